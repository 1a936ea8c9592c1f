"""Targets from cached feature maps: follow each camera's crop, resample to the student's grid, add the position term.

On the fly, a target is `pool(tokens + s * E)`: the teacher's patch tokens of the (cropped) image plus
`s * uv-sincos` on the teacher's `th x tw` patch grid, resampled to the student's `gh x gw` grid
(`pool_teacher_tokens`).
Pooling is linear, so this equals `pool(tokens) + pool(s * E)`. The cache stores `pool(tokens)` of the un-augmented
frame on a `Gh x Gw` grid (by default the student's own, where the un-augmented target is read as stored); training
adds `pool(s * E)` (`position_term`), so one cache serves every `teacher_pos_embed` / `pos_embed_scale` setting.

With image augmentation the student's camera saw the square crop `(y1, x1, y2, x2)` of the frame, resized back.
The teacher-then-crop target of student cell `(i, j)` is the cached map sampled at the point the on-the-fly
crop-then-teacher target would come from, mapped into the full frame:
- bilinear pooling (`align_corners=True`) reads teacher patch `i * (th - 1) / (gh - 1)` of the crop, whose centre
  lies at `y = y1 + (y2 - y1) * (i * (th - 1) / (gh - 1) + 0.5) / th` in the frame; the cached map holds teacher patch
  `k * (th - 1) / (Gh - 1)` at cell `k`, so the point is cell `(y * th - 0.5) * (Gh - 1) / (th - 1)`;
- area pooling averages each student cell; it is read at the cell centre `y1 + (y2 - y1) * (i + 0.5) / gh`.
For a teacher whose features move with the image (equivariant), this is exact wherever the point lies inside the
cached map; points beyond its outermost cells (within half a cell of the frame's edge) take the border's value.
Colour jitter changes the teacher's input but cannot be applied to features: cached targets never see it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rocket_openvla.align.pooling import pool_teacher_tokens

Grid = tuple[int, int]


def cached_targets(
    maps: torch.Tensor,
    cache_grids: tuple[Grid, ...],
    student_grids: tuple[Grid, ...],
    teacher_grid: Grid,
    boxes: torch.Tensor | None,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Cached maps of a batch -> the student's targets without the position term.

    Args:
        maps: `[B, sum_v Gh_v*Gw_v, C]` cached features, camera-major then row-major.
        cache_grids / student_grids: `(Gh, Gw)` / `(gh, gw)` of each camera.
        teacher_grid: `(th, tw)`, the teacher's patch grid the cache was pooled from.
        boxes: `[B, V, 4]` crop `(y1, x1, y2, x2)` in [0, 1] of each sample's cameras, or None for whole frames.
        mode: the pooling the cache was made with ("bilinear" or "area").

    Returns:
        `[B, sum_v gh_v*gw_v, C]` float32. Whole frames on the student's own grid are returned as stored.
    """
    batch, _, channels = maps.shape
    targets, start = [], 0
    for camera, (cache_grid, student_grid) in enumerate(zip(cache_grids, student_grids)):
        count = cache_grid[0] * cache_grid[1]
        camera_maps = maps[:, start:start + count].float()
        start += count
        if boxes is None and cache_grid == student_grid:
            targets.append(camera_maps)
            continue
        box = boxes[:, camera] if boxes is not None else maps.new_tensor([0.0, 0.0, 1.0, 1.0]).expand(batch, 4)
        grid = _sampling_grid(box.float(), student_grid, teacher_grid, mode)  # [B, gh, gw, 2]
        image = camera_maps.reshape(batch, *cache_grid, channels).permute(0, 3, 1, 2)
        sampled = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=mode == "bilinear")
        targets.append(sampled.permute(0, 2, 3, 1).reshape(batch, -1, channels))
    return targets[0] if len(targets) == 1 else torch.cat(targets, dim=1)


def position_term(
    student_grids: tuple[Grid, ...], teacher_grid: Grid, image_size: Grid, channels: int, scale: float, mode: str,
    device: torch.device | None = None,
) -> torch.Tensor:
    """`[sum_v gh_v*gw_v, C]` float32: `pool(scale * uv-sincos)` on each camera's grid, to add to cached targets."""
    zeros = torch.zeros(1, 1, teacher_grid[0] * teacher_grid[1], channels, device=device)
    return torch.cat([
        pool_teacher_tokens(zeros, teacher_grid, grid, image_size, pos_embed=True, pos_embed_scale=scale, mode=mode)[0]
        for grid in student_grids
    ])


def _sampling_grid(box: torch.Tensor, student_grid: Grid, teacher_grid: Grid, mode: str) -> torch.Tensor:
    """`[B, gh, gw, 2]` (x, y) in `grid_sample`'s normalised coordinates of the cached map (module docstring)."""
    ys = _frame_coordinates(box[:, 0], box[:, 2], student_grid[0], teacher_grid[0], mode)  # [B, gh]
    xs = _frame_coordinates(box[:, 1], box[:, 3], student_grid[1], teacher_grid[1], mode)  # [B, gw]
    grid_y, grid_x = ys[:, :, None].expand(-1, -1, xs.shape[1]), xs[:, None, :].expand(-1, ys.shape[1], -1)
    return torch.stack([grid_x, grid_y], dim=-1)


def _frame_coordinates(start: torch.Tensor, stop: torch.Tensor, cells: int, patches: int, mode: str) -> torch.Tensor:
    """`[B, cells]`: where each student cell's target comes from along one axis, normalised for `grid_sample`."""
    index = torch.arange(cells, dtype=torch.float32, device=start.device)
    if mode == "bilinear":
        within = (index * ((patches - 1) / max(cells - 1, 1)) + 0.5) / patches  # patch centre in the crop, [0, 1]
        frame = start[:, None] + (stop - start)[:, None] * within
        return 2 * (frame * patches - 0.5) / (patches - 1) - 1  # align_corners=True coordinates of the cached map
    frame = start[:, None] + (stop - start)[:, None] * (index + 0.5) / cells
    return 2 * frame - 1  # align_corners=False coordinates: cell centres
