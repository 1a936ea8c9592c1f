"""Resample teacher patch tokens onto the student's per-camera token grid.

The teacher (VGGT) sees each camera as one frame on a `th x tw` patch grid; the student has `gh x gw` image
tokens per camera. As in the ROCKET release, an optional small 2-D sin-cos embedding of the teacher patch
centres is added first (so the targets carry position), then each frame is bilinearly resampled with
`align_corners=True`. Output tokens are camera-major, then row-major, matching the student's order.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

POOLING_MODES = ("bilinear", "area")


def uv_grid(width: int, height: int, aspect_ratio: float, device: torch.device | None = None) -> torch.Tensor:
    """Normalised patch-centre coordinates, VGGT's `create_uv_grid` definition.

    The grid spans the image with its diagonal normalised to 1: `x in [-ar/diag, ar/diag]`,
    `y in [-1/diag, 1/diag]` with `diag = sqrt(ar^2 + 1)`, sampled at the centres of `width x height` cells.

    Returns:
        `[height, width, 2]` float32; channel 0 = u (horizontal), channel 1 = v (vertical).
    """
    diag = math.sqrt(aspect_ratio**2 + 1.0)
    span_x, span_y = aspect_ratio / diag, 1.0 / diag
    xs = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, device=device)
    ys = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


def sincos_embed(coords: torch.Tensor, dim: int, omega_0: float = 100.0) -> torch.Tensor:
    """1-D sin-cos embedding: `[..., ] -> [..., dim]` laid out as `[sin(p*w) | cos(p*w)]`.

    Frequencies `w_k = omega_0^(-k / (dim/2))` are computed in float64 as VGGT does; the result is float32.
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dim, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64, device=coords.device) / (dim / 2.0)
    omega = 1.0 / omega_0**omega
    angles = coords.to(torch.float64)[..., None] * omega
    return torch.cat([angles.sin(), angles.cos()], dim=-1).float()


@functools.lru_cache(maxsize=16)
def uv_position_embedding(height: int, width: int, dim: int, image_size: tuple[int, int],
                          device: torch.device | None = None) -> torch.Tensor:
    """VGGT's `position_grid_to_embed(create_uv_grid(...))` for a `height x width` patch grid.

    Cached: every teacher layer of every step uses the same embedding (read-only; do not modify the result).

    Args:
        image_size: `(H, W)` of the teacher input in pixels; sets the grid's aspect ratio `W / H`.

    Returns:
        `[dim, height, width]` float32: channels `[sin(u) | cos(u) | sin(v) | cos(v)]`, `dim/4` each.
    """
    if dim % 4:
        raise ValueError(f"uv position embedding needs dim divisible by 4, got {dim}")
    grid = uv_grid(width, height, aspect_ratio=image_size[1] / image_size[0], device=device)
    embed = torch.cat([sincos_embed(grid[..., 0], dim // 2), sincos_embed(grid[..., 1], dim // 2)], dim=-1)
    return embed.permute(2, 0, 1)


def pool_teacher_tokens(
    tokens: torch.Tensor,
    teacher_grid: tuple[int, int],
    student_grid: tuple[int, int],
    image_size: tuple[int, int],
    pos_embed: bool = True,
    pos_embed_scale: float = 0.1,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Resample teacher patch tokens of every camera frame to the student's per-camera grid.

    Args:
        tokens: `[B, V, th*tw, C]` teacher patch tokens of V camera frames, special tokens removed, row-major.
        teacher_grid: `(th, tw)` teacher patch grid per frame.
        student_grid: `(gh, gw)` student image-token grid per camera.
        image_size: `(H, W)` teacher input size in pixels (aspect ratio of the positional embedding).
        pos_embed: add `pos_embed_scale * uv-sincos` on the teacher grid before resampling (release default).
        mode: "bilinear" (the release: point resampling, `align_corners=True`) or "area" (average pooling over
            each student cell; an anti-aliased alternative, not in the release).

    Returns:
        `[B, V*gh*gw, C]` in the dtype of `tokens`, camera-major then row-major.
    """
    if tokens.dim() != 4:
        raise ValueError(f"tokens must be [B, V, th*tw, C], got shape {tuple(tokens.shape)}")
    if mode not in POOLING_MODES:
        raise ValueError(f"pooling mode {mode!r} is not supported; choose one of {POOLING_MODES}")
    batch, frames, num_patches, channels = tokens.shape
    (th, tw), (gh, gw) = teacher_grid, student_grid
    if th * tw != num_patches:
        raise ValueError(f"teacher_grid {teacher_grid} has {th * tw} patches but tokens carry {num_patches}")

    maps = tokens.reshape(batch * frames, th, tw, channels).permute(0, 3, 1, 2)
    if pos_embed:
        embed = uv_position_embedding(th, tw, channels, tuple(image_size), device=tokens.device)
        maps = maps + (pos_embed_scale * embed).to(maps.dtype)
    if mode == "bilinear":
        pooled = F.interpolate(maps, size=(gh, gw), mode="bilinear", align_corners=True)
    else:
        pooled = F.adaptive_avg_pool2d(maps, (gh, gw))
    return pooled.permute(0, 2, 3, 1).reshape(batch, frames * gh * gw, channels)
