"""Cosine alignment loss with token masks, reduced like the release: tokens per sample, then samples."""

from __future__ import annotations

import torch

NORMALIZE_EPS = 1e-12  # F.normalize's default, as the release


def cosine_similarity(projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Token-wise `cos(projected, target)` with `F.normalize` semantics (`x / max(||x||, 1e-12)`).

    Args:
        projected: `[B, T, D]`; target: `[B, T, D]`.

    Returns:
        `[B, T]` in float32 (computed in float32 whatever the inputs' dtype).
    """
    projected, target = projected.float(), target.float()
    dot = (projected * target).sum(dim=-1)
    norms = projected.norm(dim=-1).clamp_min(NORMALIZE_EPS) * target.norm(dim=-1).clamp_min(NORMALIZE_EPS)
    return dot / norms


def masked_alignment_loss(cosine: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`1 - cos`, averaged over valid tokens per sample, then over samples with at least one valid token.

    Args:
        cosine: `[..., B, T]` token cosine similarities (leading dims: pairs, ensemble members).
        mask: `[B, T]` bool of valid tokens, or None (all valid).

    Returns:
        `[...]` losses; 0 (with zero gradient) where no sample has a valid token, never NaN.
    """
    error = 1.0 - cosine
    if mask is None:
        return error.mean(dim=(-2, -1))
    weights = mask.to(error.dtype)
    counts = weights.sum(dim=-1)
    per_sample = (error * weights).sum(dim=-1) / counts.clamp_min(1.0)
    valid = (counts > 0).to(error.dtype)
    return (per_sample * valid).sum(dim=-1) / valid.sum().clamp_min(1.0)
