"""Linear CKA: the release's exact estimator (`linear_cka`) and a streamed minibatch accumulator (`StreamingCKA`).

Linear CKA of features X `[N, D1]`, Y `[N, D2]` with Gram matrices K = X X^T, L = Y Y^T:

    CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),   biased HSIC(K, L) = tr(H K H L) / (N-1)^2,  H = I - 11^T / N

Why the profiler streams the *minibatch* estimator (Nguyen, Raghu & Kornblith 2021): the biased N-sample estimator
pairs every sample with every other, so it needs every sample's features at once (N x D per layer: the release keeps
33 x 2048 x 256 x 4096 floats for OpenVLA-7B, ~390 GB per rank), or D1 x D2 moment matrices per layer pair, which
are larger still for token-flattened features. The minibatch estimator sums, over minibatches of B samples, the
unbiased HSIC (Song et al. 2012) of each minibatch's Gram matrices:

    CKA_mb = sum_b HSIC_1(K_b, L_b) / sqrt(sum_b HSIC_1(K_b, K_b) * sum_b HSIC_1(L_b, L_b))

Its state is three sums per layer pair, whatever N, and ranks add their sums (one all-reduce). Each HSIC_1 is an
unbiased estimate of the population HSIC, so the ratio is consistent as N grows, and it avoids the biased
estimator's upward bias when D >> N (the profiler's flattened features have D ~ 10^6 per sample).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist

MIN_UNBIASED_BATCH = 4  # HSIC_1 divides by n (n - 3)


def _features(values: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    values = torch.as_tensor(values)
    if values.dim() != 2:
        raise ValueError(f"{name} must be an [N, D] feature matrix, got shape {tuple(values.shape)}")
    return values.to(torch.float64)


def linear_cka(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Linear CKA of `x [N, D1]` and `y [N, D2]` with the biased HSIC estimator, as the release (in float64).

    Returns:
        CKA in [0, 1]; 0 when either side has no variance across samples (the release's convention).
    """
    x, y = _features(x, "x"), _features(y, "y")
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"x and y need the same number N >= 2 of samples, got {x.shape[0]} and {y.shape[0]}")
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    gram_x, gram_y = x @ x.T, y @ y.T
    norms = gram_x.norm() * gram_y.norm()
    return 0.0 if norms == 0 else float((gram_x * gram_y).sum() / norms)


def centred_gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of one minibatch's features, centred over the batch first (HSIC does not change; float cancellation
    on large common offsets, e.g. an LLM's massive activations, is avoided).

    Args:
        features: `[B, ...]` one sample per row (flattened); bf16/fp16 are computed in float32.

    Returns:
        `[B, B]` float64.
    """
    flat = features.flatten(1)
    if flat.dtype in (torch.bfloat16, torch.float16):
        flat = flat.float()
    flat = flat - flat.mean(dim=0, keepdim=True)
    return (flat @ flat.T).double()


def hsic_terms(grams_x: torch.Tensor, grams_y: torch.Tensor, unbiased: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HSIC of every (x, y) pair and of each side with itself, for one minibatch.

    Args:
        grams_x: `[S, B, B]` Gram matrices of S representations; grams_y: `[T, B, B]`.
        unbiased: Song et al.'s HSIC_1 (needs B >= 4); else the biased tr(HKHL) / (B-1)^2.

    Returns:
        `(cross [S, T], self_x [S], self_y [T])`.
    """
    n = grams_x.shape[-1]
    if unbiased:
        if n < MIN_UNBIASED_BATCH:
            raise ValueError(f"the unbiased HSIC needs minibatches of at least {MIN_UNBIASED_BATCH} samples, got {n}")
        off_diagonal = 1.0 - torch.eye(n, dtype=grams_x.dtype, device=grams_x.device)
        grams_x, grams_y = grams_x * off_diagonal, grams_y * off_diagonal

        def hsic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # a [P, B, B], b [Q, B, B] -> [P, Q]
            trace = a.flatten(1) @ b.flatten(1).T
            totals = a.sum(dim=(1, 2))[:, None] * b.sum(dim=(1, 2))[None, :] / ((n - 1) * (n - 2))
            rows = a.sum(dim=2) @ b.sum(dim=2).T * (2.0 / (n - 2))
            return (trace + totals - rows) / (n * (n - 3))
    else:
        grams_x = grams_x - grams_x.mean(dim=1, keepdim=True) - grams_x.mean(dim=2, keepdim=True) \
            + grams_x.mean(dim=(1, 2), keepdim=True)
        grams_y = grams_y - grams_y.mean(dim=1, keepdim=True) - grams_y.mean(dim=2, keepdim=True) \
            + grams_y.mean(dim=(1, 2), keepdim=True)

        def hsic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a.flatten(1) @ b.flatten(1).T / (n - 1) ** 2

    self_x = torch.stack([hsic(g[None], g[None])[0, 0] for g in grams_x])
    self_y = torch.stack([hsic(g[None], g[None])[0, 0] for g in grams_y])
    return hsic(grams_x, grams_y), self_x, self_y


class StreamingCKA:
    """Minibatch linear CKA between S student and T teacher representations, accumulated batch by batch.

    State: `cross [S, T]`, `self_x [S]`, `self_y [T]` (float64 sums of per-minibatch HSIC) and the number of
    minibatches; its size does not depend on how many samples pass through.
    """

    def __init__(self, num_x: int, num_y: int, unbiased: bool = True, device: torch.device | str = "cpu") -> None:
        self.unbiased = unbiased
        self.cross = torch.zeros(num_x, num_y, dtype=torch.float64, device=device)
        self.self_x = torch.zeros(num_x, dtype=torch.float64, device=device)
        self.self_y = torch.zeros(num_y, dtype=torch.float64, device=device)
        self.batches = torch.zeros((), dtype=torch.float64, device=device)

    def update(self, x: Sequence[torch.Tensor], y: Sequence[torch.Tensor]) -> None:
        """Add one minibatch: S tensors `[B, ...]` and T tensors `[B, ...]` holding the same B samples in order."""
        if len(x) != self.cross.shape[0] or len(y) != self.cross.shape[1]:
            raise ValueError(f"expected {self.cross.shape[0]} x and {self.cross.shape[1]} y representations, got "
                             f"{len(x)} and {len(y)}")
        sizes = {t.shape[0] for t in (*x, *y)}
        if len(sizes) != 1:
            raise ValueError(f"every representation of a minibatch must hold the same samples, got batch sizes {sizes}")
        cross, self_x, self_y = hsic_terms(torch.stack([centred_gram(t) for t in x]),
                                           torch.stack([centred_gram(t) for t in y]), self.unbiased)
        self.cross += cross.to(self.cross.device)
        self.self_x += self_x.to(self.cross.device)
        self.self_y += self_y.to(self.cross.device)
        self.batches += 1

    def all_reduce(self) -> None:
        """Sum the state over the processes of the default process group (no-op without one)."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        packed = torch.cat([self.cross.flatten(), self.self_x, self.self_y, self.batches[None]])
        dist.all_reduce(packed)
        sizes = [self.cross.numel(), self.self_x.numel(), self.self_y.numel(), 1]
        cross, self_x, self_y, batches = packed.split(sizes)
        self.cross, self.self_x, self.self_y = cross.view_as(self.cross), self_x, self_y
        self.batches = batches[0]

    def matrix(self) -> torch.Tensor:
        """`[S, T]` CKA; NaN where a side has no estimated variance (no minibatch yet, or constant features)."""
        denominator = (self.self_x[:, None] * self.self_y[None, :]).sqrt()
        return torch.where(denominator > 0, self.cross / denominator, torch.full_like(self.cross, float("nan")))
