"""Select the student's image-token states from a full residual-stream sequence."""

from __future__ import annotations

import torch


def select_image_tokens(hidden: torch.Tensor, start: int, count: int, shift: int = 0) -> torch.Tensor:
    """Image-token states paired with teacher patches 0..count-1.

    Student token k is the state at sequence position `start + shift + k`. With `shift=1` (the OpenVLA release's
    `gain_feat_1move`), the state at patch k+1 is paired with teacher patch k: patch 0 is dropped and the last
    token is whatever follows the image tokens (OpenVLA-OFT: the proprio token).

    Args:
        hidden: `[B, S, D]` one layer's hidden states.
        start: sequence position of the first image token.
        count: number of image tokens (all cameras).

    Returns:
        `[B, count, D]` view of `hidden`.
    """
    end = start + shift + count
    if end > hidden.shape[1]:
        raise ValueError(
            f"image tokens [{start + shift}, {end}) run past the sequence length {hidden.shape[1]}; "
            "check the image-token span and rocket.student_token_shift"
        )
    return hidden[:, start + shift:end]
