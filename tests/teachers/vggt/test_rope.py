"""2-D RoPE: token positions and the rotation's defining properties."""

from __future__ import annotations

import torch

from rocket_openvla.teachers.vggt.rope import RotaryEmbedding2D, patch_positions


def test_special_tokens_at_origin_and_patches_row_major_from_one():
    positions = patch_positions(2, 3, num_special=2)
    expected = [[0, 0], [0, 0], [1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]
    assert positions.tolist() == expected


def _rotated_dot(rope: RotaryEmbedding2D, q: torch.Tensor, k: torch.Tensor, pos_q, pos_k) -> torch.Tensor:
    cos, sin = rope.tables(torch.tensor([pos_q, pos_k]), q.shape[-1])
    rotated_q = rope(q.unsqueeze(0), cos[:1], sin[:1])
    rotated_k = rope(k.unsqueeze(0), cos[1:], sin[1:])
    return (rotated_q * rotated_k).sum()


def test_attention_logits_depend_only_on_relative_position():
    rope = RotaryEmbedding2D(base=100)
    q, k = torch.randn(2, 16).unbind(0)
    reference = _rotated_dot(rope, q, k, (3, 5), (1, 2))
    shifted = _rotated_dot(rope, q, k, (3 + 7, 5 + 4), (1 + 7, 2 + 4))
    other_offset = _rotated_dot(rope, q, k, (3, 5), (2, 2))
    torch.testing.assert_close(shifted, reference, atol=1e-5, rtol=0)
    assert (other_offset - reference).abs() > 1e-3


def test_first_half_follows_rows_and_second_half_columns():
    rope = RotaryEmbedding2D(base=100)
    x = torch.randn(1, 3, 8)
    cos, sin = rope.tables(torch.tensor([[2, 1], [2, 6], [5, 1]]), 8)
    out = rope(x, cos, sin)
    assert torch.equal(out[0, 0, :4], rope(x, cos[[1]], sin[[1]])[0, 0, :4])  # same row, other column
    assert torch.equal(out[0, 0, 4:], rope(x, cos[[2]], sin[[2]])[0, 0, 4:])  # same column, other row
    assert not torch.allclose(out[0, 0, :4], rope(x, cos[[2]], sin[[2]])[0, 0, :4])


def test_position_zero_is_identity_and_norm_is_preserved():
    rope = RotaryEmbedding2D(base=100)
    x = torch.randn(2, 4, 3, 16)
    cos, sin = rope.tables(torch.tensor([[0, 0], [4, 9], [37, 37]]), 16)
    out = rope(x, cos, sin)
    assert torch.equal(out[..., 0, :], x[..., 0, :])
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
