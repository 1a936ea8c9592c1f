"""VGGT as a ROCKET teacher: the student's cameras become one VGGT frame sequence (camera 0 = reference frame)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from rocket_openvla.align import resolve_layers
from rocket_openvla.teachers.base import FrozenTeacher, TeacherPooling
from rocket_openvla.teachers.preprocessing import InputFormat, PixelNormalization
from rocket_openvla.teachers.vggt.aggregator import VGGTAggregator
from rocket_openvla.teachers.vggt.checkpoint import AGGREGATOR_PREFIX, load_aggregator
from rocket_openvla.teachers.vggt.config import VGGT_1B, VGGT_TINY, VGGTAggregatorConfig


class VGGTTeacher(FrozenTeacher):
    """Targets from VGGT aggregator blocks: ``feature_dim = 2 * embed_dim`` (frame | global attention outputs).

    Args:
        aggregator: the (loaded) aggregator; frozen and put in eval mode here.
        layers: aggregator block indices ``0..depth-1`` (negatives Python-style).
        grid: the student's token grid of every camera, 16x16 for OpenVLA, or one grid per camera.
        num_cameras: cameras per sample = VGGT frames per sequence.
        input_format: ``"openvla"``, ``"pm1"`` or ``"unit"`` (see ``rocket_openvla.teachers.preprocessing``).
        pixel_normalization: ``(mean, std)`` the student applied to the DINOv2 half of ``pixel_values``
            (``"openvla"`` only), e.g. ``OpenVLAProcessor.normalization.means[0], .stds[0]``.
        pooling: resampling of teacher patch tokens to ``grid``.
        image_size: teacher input width in pixels (VGGT "crop" resize); default the config's ``img_size``.
    """

    def __init__(
        self,
        aggregator: VGGTAggregator,
        layers: Sequence[int],
        grid: tuple[int, int] | Sequence[tuple[int, int]] = (16, 16),
        num_cameras: int = 1,
        input_format: InputFormat = "unit",
        pixel_normalization: PixelNormalization | None = None,
        pooling: TeacherPooling = TeacherPooling(),
        image_size: int | None = None,
    ) -> None:
        config = aggregator.config
        super().__init__(
            backbone=aggregator,
            layers=resolve_layers(layers, config.depth, "teacher layers"),
            feature_dim=config.feature_dim,
            grid=grid,
            num_cameras=num_cameras,
            input_format=input_format,
            pixel_normalization=pixel_normalization,
            pooling=pooling,
            image_size=config.img_size if image_size is None else image_size,
            patch_size=config.patch_size,
        )

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        layers: Sequence[int],
        config: VGGTAggregatorConfig = VGGT_1B,
        prefix: str = AGGREGATOR_PREFIX,
        **teacher_kwargs,
    ) -> VGGTTeacher:
        """Load the aggregator strictly from ``path`` (official ``model.pt`` or a safetensors export; heads ignored)."""
        return cls(load_aggregator(path, config, prefix), layers, **teacher_kwargs)

    @classmethod
    def random(
        cls, layers: Sequence[int], config: VGGTAggregatorConfig = VGGT_TINY, seed: int = 0, **teacher_kwargs
    ) -> VGGTTeacher:
        """A randomly initialised teacher (tests, CPU quickstart); the same ``seed`` gives the same weights."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            aggregator = VGGTAggregator.from_config(config)
        return cls(aggregator, layers, **teacher_kwargs)

    @property
    def aggregator(self) -> VGGTAggregator:
        return self.backbone

    def encode(self, frames: Tensor) -> Iterator[tuple[int, Tensor]]:
        start = self.aggregator.patch_start_idx
        for layer, output in self.aggregator.iter_blocks(frames, self.layers):
            yield layer, output[:, :, start:]
