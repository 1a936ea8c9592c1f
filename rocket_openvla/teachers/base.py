"""What a teacher is (``Teacher``), and the frozen pipeline every teacher shares (``FrozenTeacher``).

A teacher maps the student's images to one target tensor per requested teacher layer,
``[B, sum_v gh_v * gw_v, feature_dim]`` fp32 (camera-major, then row-major over the student's grid of each camera),
without gradients. The finetune loop and the feature cache depend only on ``Teacher``.
"""

from __future__ import annotations

import contextlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from rocket_openvla.align import RocketConfig, pool_teacher_tokens
from rocket_openvla.align.pooling import POOLING_MODES
from rocket_openvla.teachers.preprocessing import (
    InputFormat,
    PixelNormalization,
    check_input_format,
    check_unit_range,
    resize_for_teacher,
    to_unit_images,
)


@runtime_checkable
class Teacher(Protocol):
    """A frozen feature teacher.

    Attributes:
        layers: resolved (non-negative) teacher layer indices, in the order targets are returned.
        feature_dim: channels of each target.
        grids: the student's token grid ``(gh, gw)`` of each camera, which that camera's targets are pooled to.
    """

    layers: list[int]
    feature_dim: int
    grids: tuple[tuple[int, int], ...]

    def __call__(self, images: Tensor) -> list[Tensor]:
        """Student images -> one ``[B, sum_v gh_v*gw_v, feature_dim]`` fp32 tensor per layer in ``layers``."""
        ...


@dataclass(frozen=True)
class TeacherPooling:
    """How teacher patch tokens are resampled to the student grid (``RocketConfig.teacher_pos_embed``,
    ``.pos_embed_scale``, ``.pooling``); see ``rocket_openvla.align.pool_teacher_tokens``."""

    pos_embed: bool = True
    pos_embed_scale: float = 0.1
    mode: str = "bilinear"

    def __post_init__(self) -> None:
        if self.mode not in POOLING_MODES:
            raise ValueError(f"TeacherPooling.mode={self.mode!r} is not supported; choose one of {POOLING_MODES}.")

    @classmethod
    def from_rocket_config(cls, config: RocketConfig) -> TeacherPooling:
        return cls(pos_embed=config.teacher_pos_embed, pos_embed_scale=config.pos_embed_scale, mode=config.pooling)


class FrozenTeacher(nn.Module, ABC):
    """Student images -> teacher frames -> backbone patch tokens -> pooled targets, frozen and in eval mode.

    Subclasses implement ``encode``. The backbone runs under bf16 autocast on CUDA and in fp32 elsewhere;
    pooling always runs in fp32. The image range is checked on the first call only (it costs a host sync).
    """

    def __init__(
        self,
        backbone: nn.Module,
        layers: list[int],
        feature_dim: int,
        grid: tuple[int, int] | Sequence[tuple[int, int]],
        num_cameras: int,
        input_format: InputFormat,
        pixel_normalization: PixelNormalization | None,
        pooling: TeacherPooling,
        image_size: int,
        patch_size: int,
    ) -> None:
        super().__init__()
        check_input_format(input_format, pixel_normalization)
        if num_cameras < 1:
            raise ValueError(f"teacher num_cameras={num_cameras} must be at least 1.")
        grids = camera_grids(grid, num_cameras)
        if not layers:
            raise ValueError("teacher layers is empty; request at least one teacher layer.")
        if image_size % patch_size:
            raise ValueError(
                f"teacher image_size={image_size} is not a multiple of the teacher patch size {patch_size}."
            )
        self.backbone = backbone.requires_grad_(False).eval()
        self.layers = list(layers)
        self.feature_dim = feature_dim
        self.grids = grids
        self.num_cameras = num_cameras
        self.input_format = input_format
        self.pixel_normalization = pixel_normalization
        self.pooling = pooling
        self.image_size = image_size
        self.patch_size = patch_size
        self._range_checked = False
        self.train(False)

    @abstractmethod
    def encode(self, frames: Tensor) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(layer, tokens [B, V, th*tw, C])`` for every distinct requested layer, special tokens removed.

        ``frames`` is ``[B, V, 3, H, W]`` in [0, 1] with H, W multiples of the patch size.
        """

    def train(self, mode: bool = True) -> FrozenTeacher:
        """A teacher stays in eval mode whatever its parent's mode."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> list[Tensor]:
        """Student images (see ``input_format``) -> ``[B, V*gh*gw, feature_dim]`` fp32 per layer in ``layers``."""
        unit = to_unit_images(images, self.input_format, self.num_cameras, self.pixel_normalization)
        if not self._range_checked:
            check_unit_range(unit, self.input_format)
            self._range_checked = True
        frames = resize_for_teacher(unit, self.image_size, self.patch_size)
        image_size = (frames.shape[-2], frames.shape[-1])
        teacher_grid = (image_size[0] // self.patch_size, image_size[1] // self.patch_size)
        device_type = frames.device.type
        targets: dict[int, Tensor] = {}
        with _backbone_autocast(device_type):
            for layer, tokens in self.encode(frames):
                with torch.autocast(device_type, enabled=False):
                    targets[layer] = self._pool(tokens.float(), teacher_grid, image_size)
        return [targets[layer] for layer in self.layers]

    def _pool(self, tokens: Tensor, teacher_grid: tuple[int, int], image_size: tuple[int, int]) -> Tensor:
        """``[B, V, th*tw, C]`` -> ``[B, sum_v gh_v*gw_v, C]``: each run of cameras sharing a grid pooled at once."""
        pooled, start = [], 0
        for grid, run in itertools.groupby(self.grids):
            count = len(list(run))
            pooled.append(pool_teacher_tokens(
                tokens[:, start:start + count], teacher_grid=teacher_grid, student_grid=grid, image_size=image_size,
                pos_embed=self.pooling.pos_embed, pos_embed_scale=self.pooling.pos_embed_scale, mode=self.pooling.mode,
            ))
            start += count
        return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=1)


def camera_grids(grid: tuple[int, int] | Sequence[tuple[int, int]], num_cameras: int) -> tuple[tuple[int, int], ...]:
    """One ``(gh, gw)`` per camera from a grid shared by all cameras or a sequence of per-camera grids."""
    grids = [grid] * num_cameras if len(grid) == 2 and all(isinstance(g, int) for g in grid) else list(grid)
    grids = [tuple(int(v) for v in g) for g in grids]
    if len(grids) != num_cameras or any(len(g) != 2 or min(g) < 1 for g in grids):
        raise ValueError(
            f"teacher grid={grid} must be the student's token grid (gh, gw), e.g. (16, 16), or one per camera "
            f"({num_cameras} cameras)"
        )
    return tuple(grids)


def _backbone_autocast(device_type: str) -> contextlib.AbstractContextManager:
    if device_type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
