"""2-D rotary position embedding of VGGT's aggregator blocks.

Each attention head of width D is split into two halves: the first D/2 channels are rotated by the token's row
(y), the last D/2 by its column (x). Within a half of width d, channel pairs (j, j + d/2) rotate by the angle
``position * base**(-2j/d)`` (rotate-half convention). Special tokens sit at position (0, 0); patches at
(row + 1, col + 1). Global attention reuses the per-frame positions, so RoPE carries no frame index.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def patch_positions(grid_h: int, grid_w: int, num_special: int, device: torch.device | None = None) -> Tensor:
    """Integer (y, x) positions of one frame's tokens: ``[num_special + grid_h * grid_w, 2]``.

    Special tokens get (0, 0); patch (r, c) in row-major order gets (r + 1, c + 1).
    """
    rows = torch.arange(1, grid_h + 1, device=device)
    cols = torch.arange(1, grid_w + 1, device=device)
    patches = torch.cartesian_prod(rows, cols)
    special = torch.zeros(num_special, 2, dtype=patches.dtype, device=device)
    return torch.cat([special, patches], dim=0)


def _swap_pair_halves(x: Tensor) -> Tensor:
    """Last dim laid out [y_a | y_b | x_a | x_b] -> [y_b | y_a | x_b | x_a]."""
    return x.unflatten(-1, (2, 2, -1)).flip(-2).flatten(-3)


class RotaryEmbedding2D(nn.Module):
    """Parameter-free 2-D RoPE; ``tables`` builds cos/sin once per forward, ``forward`` rotates q or k.

    ``angles_follow_autocast``: the original computes the angle table with ``einsum``, which CUDA autocast runs
    in its low-precision dtype (angles rounded to bf16 before cos/sin, up to 0.07 rad off for 37x37 grids; CPU
    autocast keeps einsum in fp32). VGGT-1B features computed the official way (bf16 autocast on CUDA) include
    that rounding, so it is reproduced by default; set False for fp32 angles in every context.
    """

    def __init__(self, base: float = 100.0, angles_follow_autocast: bool = True) -> None:
        super().__init__()
        self.base = float(base)
        self.angles_follow_autocast = angles_follow_autocast

    def tables(self, positions: Tensor, head_dim: int) -> tuple[Tensor, Tensor]:
        """cos and signed sin for ``positions [N, 2]`` (y, x): two ``[N, head_dim]`` fp32 tensors.

        The rotate-half sign is folded into the sin table (``-sin`` on each half's first quarter), so applying
        the rotation is ``x * cos + swap(x) * sin`` with no negation, identical in value to the textbook form.
        """
        half = head_dim // 2
        device = positions.device
        angle_dtype = torch.float32
        if self.angles_follow_autocast and device.type == "cuda" and torch.is_autocast_enabled("cuda"):
            angle_dtype = torch.get_autocast_dtype("cuda")
        exponents = torch.arange(0, half, 2, device=device, dtype=torch.float32) / half
        inv_freq = (1.0 / self.base**exponents).to(angle_dtype)
        angles = (positions.to(angle_dtype).unsqueeze(-1) * inv_freq).float()  # [N, 2, half / 2]
        y_angles, x_angles = angles.unbind(dim=1)
        angles = torch.cat([y_angles, y_angles, x_angles, x_angles], dim=-1)  # [N, head_dim]
        sign = torch.ones(2, 2, head_dim // 4, device=device)
        sign[:, 0] = -1.0
        return angles.cos(), angles.sin() * sign.flatten()

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """Rotate ``x [..., N, head_dim]`` by tables ``[N, head_dim]`` from :meth:`tables`."""
        return x * cos + _swap_pair_halves(x) * sin
