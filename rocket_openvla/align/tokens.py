"""Gather the student's image-token states from a full residual-stream sequence."""

from __future__ import annotations

import torch


def gather_tokens(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The states at the given sequence positions, per sample.

    Args:
        hidden: `[B, S, D]` one layer's hidden states.
        positions: `[B, T]` int64 sequence positions, e.g. each sample's image tokens in the teacher's token order
            (camera-major, then row-major), plus `RocketConfig.student_token_shift`.

    Returns:
        `[B, T, D]` (gradients flow back into `hidden`).
    """
    if positions.dim() != 2 or positions.shape[0] != hidden.shape[0]:
        raise ValueError(f"positions must be [B={hidden.shape[0]}, T], got {tuple(positions.shape)}")
    return hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
