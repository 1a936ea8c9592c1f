"""Cached feature maps -> targets: exact where it must be, and the crop geometry of the on-the-fly targets."""

import pytest
import torch

from rocket_openvla.align.pooling import pool_teacher_tokens
from rocket_openvla.teachers.cache.geometry import cached_targets, position_term

TEACHER_GRID = (16, 16)
IMAGE_SIZE = (224, 224)


def _linear_field(centres_y: torch.Tensor, centres_x: torch.Tensor, channels: int = 4) -> torch.Tensor:
    """`[H*W, C]` features that are linear in the frame coordinates (y, x) of each patch centre; bilinear resampling
    reproduces a linear field exactly, so an equivariant teacher is modelled without error."""
    y, x = torch.meshgrid(centres_y.double(), centres_x.double(), indexing="ij")
    weights = torch.arange(1, channels + 1, dtype=torch.float64)
    return (y[..., None] * weights + x[..., None] * (weights - 2.5) + 0.3).reshape(-1, channels).float()


def _patch_centres(start: float, stop: float, patches: int) -> torch.Tensor:
    return start + (stop - start) * (torch.arange(patches, dtype=torch.float64) + 0.5) / patches


def _on_the_fly(box: tuple[float, float, float, float], student_grid, mode: str) -> torch.Tensor:
    """Crop-then-teacher for the linear-field teacher: tokens at the crop's own patch centres, pooled."""
    y1, x1, y2, x2 = box
    tokens = _linear_field(_patch_centres(y1, y2, TEACHER_GRID[0]), _patch_centres(x1, x2, TEACHER_GRID[1]))
    return pool_teacher_tokens(tokens[None, None], TEACHER_GRID, student_grid, IMAGE_SIZE, pos_embed=False,
                               mode=mode)[0]


@pytest.mark.parametrize("mode", ["bilinear", "area"])
@pytest.mark.parametrize("cache_side", [8, 16])  # the student's own grid, and a finer cache grid
def test_teacher_then_crop_equals_crop_then_teacher_for_an_equivariant_teacher(mode, cache_side):
    student_grid, cache_grid = (8, 8), (cache_side, cache_side)
    whole = _on_the_fly((0.0, 0.0, 1.0, 1.0), cache_grid, mode)  # what the precompute stores [G*G, C]
    side = 0.9**0.5
    # offsets whose sampled points stay inside the cached map (beyond it, targets are clamped to its border)
    boxes = torch.tensor([[offset, offset, offset + side, offset + side] for offset in (0.01, 0.045)])
    maps = torch.stack([torch.cat([whole, whole])] * 2)  # [B=2, V=2 cameras, ...]
    camera_boxes = torch.stack([boxes, boxes.flip(0)], dim=1)  # [B, V, 4]: each camera its own crop
    targets = cached_targets(maps, (cache_grid,) * 2, (student_grid,) * 2, TEACHER_GRID, camera_boxes, mode)
    assert targets.shape == (2, 2 * 64, 4)
    for sample in range(2):
        for camera in range(2):
            expected = _on_the_fly(tuple(camera_boxes[sample, camera].tolist()), student_grid, mode)
            got = targets[sample, camera * 64:(camera + 1) * 64]
            torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)


def test_whole_frames_on_the_student_grid_are_read_as_stored():
    grids = ((8, 8), (8, 8), (4, 4), (4, 4))
    maps = torch.randn(3, sum(h * w for h, w in grids), 5)
    assert torch.equal(cached_targets(maps, grids, grids, TEACHER_GRID, None), maps)


def test_the_position_term_completes_the_pooling_linearly():
    # pool(tokens + s E) == pool(tokens) + position_term: the cache stores pool(tokens).
    tokens = torch.randn(2, 2, TEACHER_GRID[0] * TEACHER_GRID[1], 8)
    for mode in ("bilinear", "area"):
        with_position = pool_teacher_tokens(tokens, TEACHER_GRID, (8, 8), IMAGE_SIZE, pos_embed_scale=0.1, mode=mode)
        without = pool_teacher_tokens(tokens, TEACHER_GRID, (8, 8), IMAGE_SIZE, pos_embed=False, mode=mode)
        term = position_term(((8, 8), (8, 8)), TEACHER_GRID, IMAGE_SIZE, 8, 0.1, mode)
        torch.testing.assert_close(without + term, with_position, atol=1e-6, rtol=0)
