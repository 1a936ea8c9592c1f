import pytest
import torch

from rocket_openvla.align import select_image_tokens


def test_shift_pairs_patch_k_plus_one_with_teacher_patch_k():
    hidden = torch.arange(10).reshape(1, 10, 1)  # positions: 0 BOS, 1..6 patches, 7 proprio, ...
    assert select_image_tokens(hidden, start=1, count=6).flatten().tolist() == [1, 2, 3, 4, 5, 6]
    assert select_image_tokens(hidden, start=1, count=6, shift=1).flatten().tolist() == [2, 3, 4, 5, 6, 7]


def test_span_past_sequence_end():
    with pytest.raises(ValueError, match="student_token_shift"):
        select_image_tokens(torch.zeros(1, 7, 1), start=1, count=6, shift=1)
