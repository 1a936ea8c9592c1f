import math

import pytest
import torch

from rocket_openvla.align import pool_teacher_tokens
from rocket_openvla.align.pooling import uv_grid, uv_position_embedding


def test_uv_grid_matches_vggt_definition():
    grid = uv_grid(37, 37, aspect_ratio=1.0)
    assert grid.shape == (37, 37, 2)
    span = 1 / math.sqrt(2)
    assert grid[0, 0, 0].item() == pytest.approx(-0.68800, abs=1e-5)
    assert grid[0, 1, 0].item() == pytest.approx(-0.64977, abs=1e-5)
    assert grid[0, 36, 0].item() == pytest.approx(0.68800, abs=1e-5)
    assert grid[5, 0, 1].item() == pytest.approx(span * (2 * 5 + 1 - 37) / 37, abs=1e-6)  # v varies along rows
    wide = uv_grid(4, 2, aspect_ratio=2.0)
    assert wide.shape == (2, 4, 2)
    assert wide[0, -1, 0].item() == pytest.approx(2 / math.sqrt(5) * 3 / 4, abs=1e-6)


def test_position_embedding_layout():
    dim = 16
    embed = uv_position_embedding(3, 5, dim, image_size=(518, 518))
    grid = uv_grid(5, 3, aspect_ratio=1.0)
    u, v = grid[1, 2]
    omega = 1 / 100 ** (torch.arange(4, dtype=torch.float64) / 4)
    expected = torch.cat([torch.sin(u * omega), torch.cos(u * omega), torch.sin(v * omega), torch.cos(v * omega)])
    torch.testing.assert_close(embed[:, 1, 2], expected.float(), atol=1e-6, rtol=0)


def ramp_tokens(batch: int, frames: int, grid: tuple[int, int], channels: int) -> torch.Tensor:
    """Tokens whose value is an affine function of (frame, row, col) so bilinear resampling is exact."""
    rows = torch.arange(grid[0], dtype=torch.float64)[:, None].expand(grid)
    cols = torch.arange(grid[1], dtype=torch.float64)[None, :].expand(grid)
    frame_maps = [1000 * f + 3 * rows + cols for f in range(frames)]
    values = torch.stack(frame_maps).reshape(1, frames, -1, 1)
    return values.expand(batch, frames, grid[0] * grid[1], channels).clone()


def test_bilinear_resampling_is_camera_major_row_major_and_align_corners():
    tokens = ramp_tokens(batch=2, frames=3, grid=(37, 37), channels=4)
    pooled = pool_teacher_tokens(tokens, (37, 37), (16, 16), (518, 518), pos_embed=False)
    assert pooled.shape == (2, 3 * 256, 4)
    step = 36 / 15
    for frame, row, col in [(0, 0, 0), (0, 15, 15), (1, 3, 7), (2, 15, 0)]:
        expected = 1000 * frame + 3 * row * step + col * step
        index = frame * 256 + row * 16 + col
        assert pooled[1, index, 2].item() == pytest.approx(expected, abs=1e-9)


def test_positional_embedding_is_scaled_and_resampled_with_the_tokens():
    tokens = torch.randn(1, 2, 6 * 8, 8, dtype=torch.float64)
    plain = pool_teacher_tokens(tokens, (6, 8), (3, 4), (84, 112), pos_embed=False)
    with_pe = pool_teacher_tokens(tokens, (6, 8), (3, 4), (84, 112), pos_embed=True, pos_embed_scale=0.1)
    embed = 0.1 * uv_position_embedding(6, 8, 8, image_size=(84, 112)).double()
    embed_tokens = embed.permute(1, 2, 0).reshape(1, 1, 48, 8).expand(1, 2, 48, 8)
    pooled_embed = pool_teacher_tokens(embed_tokens.contiguous(), (6, 8), (3, 4), (84, 112), pos_embed=False)
    torch.testing.assert_close(with_pe - plain, pooled_embed)


def test_area_pooling_averages_cells():
    tokens = torch.arange(16, dtype=torch.float32).reshape(1, 1, 16, 1)
    pooled = pool_teacher_tokens(tokens, (4, 4), (2, 2), (56, 56), pos_embed=False, mode="area")
    assert pooled.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


def test_bad_grid_and_mode():
    tokens = torch.zeros(1, 2, 10, 4)
    with pytest.raises(ValueError, match="teacher_grid"):
        pool_teacher_tokens(tokens, (3, 3), (2, 2), (42, 42))
    with pytest.raises(ValueError, match="pooling mode"):
        pool_teacher_tokens(tokens, (2, 5), (2, 2), (28, 70), mode="nearest")
