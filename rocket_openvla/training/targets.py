"""Where a batch's teacher targets come from: the teacher on the fly, or a precomputed cache.

Both take the batch's raw samples when they are drawn (`prefetch`, where the cache starts its read; see
`training/batches.py`) and the processed batch on the device (`targets`), and return one `[B, T, Dt]` target per
layer pair plus a `[B]` mask of the samples that have targets (None: all do). `run_manifest` states what a run needs
of a cache, without a teacher.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import draccus
import numpy as np
import torch

from rocket_openvla.align import RocketConfig
from rocket_openvla.backbones.base import BackboneAdapter
from rocket_openvla.data.config import DataConfig
from rocket_openvla.teachers.base import FrozenTeacher, Teacher
from rocket_openvla.teachers.cache.geometry import cached_targets, position_term
from rocket_openvla.teachers.cache.layout import FORMAT_VERSION, file_identity
from rocket_openvla.teachers.cache.reader import CachedBatch, TeacherCache
from rocket_openvla.teachers.registry import TeacherConfig

logger = logging.getLogger(__name__)
Targets = tuple[list[torch.Tensor], torch.Tensor | None]


class OnlineTargets:
    """The frozen teacher run on the batch's images."""

    def __init__(self, teacher: Teacher, adapter: BackboneAdapter) -> None:
        self.teacher, self.adapter = teacher, adapter

    def prefetch(self, samples: list[dict[str, Any]]) -> None:
        return None

    def targets(self, batch: dict[str, Any], pending: None) -> Targets:
        return self.teacher(self.adapter.teacher_images(batch)), None


class CachedTargets:
    """Targets read from a `TeacherCache` by sample key, following each sample's crop (`teachers.cache.geometry`)."""

    def __init__(self, cache: TeacherCache, layers: list[int], student_grids: tuple[tuple[int, int], ...],
                 rocket: RocketConfig, device: torch.device) -> None:
        self.cache, self.layers, self.device = cache, layers, device
        self.resample = CacheResampler(cache.manifest, student_grids, rocket, device)

    def prefetch(self, samples: list[dict[str, Any]]) -> tuple[Future[CachedBatch], torch.Tensor | None]:
        keys = [(sample["episode_id"], int(sample["step"])) for sample in samples]
        boxes = np.stack([sample["crop_boxes"] for sample in samples])
        whole = bool((boxes == np.array([0.0, 0.0, 1.0, 1.0], np.float32)).all())
        return self.cache.submit(keys, self.layers), None if whole else torch.from_numpy(boxes)

    def targets(self, batch: dict[str, Any], pending: tuple[Future[CachedBatch], torch.Tensor | None]) -> Targets:
        future, boxes = pending
        cached = future.result()
        return self.resample(cached.features, boxes), cached.valid.to(self.device)


class CacheResampler:
    """Cached feature maps -> a batch's targets: moved to the device, resampled along each sample's crop onto the
    student's grids, plus the position term (when `rocket.teacher_pos_embed`)."""

    def __init__(self, geometry: dict[str, Any], student_grids: tuple[tuple[int, int], ...], rocket: RocketConfig,
                 device: torch.device) -> None:
        """
        Args:
            geometry: the cache's manifest, or `cache_geometry(teacher)` + `{"pooling": ...}`: needs `grids`,
                `teacher_grid`, `teacher_image_size`, `feature_dim` and `pooling`.
        """
        self.device = device
        self.cache_grids = tuple(tuple(grid) for grid in geometry["grids"])
        self.student_grids = student_grids
        self.teacher_grid = tuple(geometry["teacher_grid"])
        self.mode = geometry["pooling"]
        self.position = None
        if rocket.teacher_pos_embed:
            self.position = position_term(student_grids, self.teacher_grid, tuple(geometry["teacher_image_size"]),
                                          geometry["feature_dim"], rocket.pos_embed_scale, self.mode, device=device)

    def __call__(self, features: list[torch.Tensor], boxes: torch.Tensor | None) -> list[torch.Tensor]:
        """
        Args:
            features: per layer, `[B, sum_v Gh_v*Gw_v, C]` maps on the cache grids (host or device).
            boxes: `[B, V, 4]` crop `(y1, x1, y2, x2)` in [0, 1] of each sample's cameras; None: whole frames.
        Returns:
            per layer, `[B, sum_v gh_v*gw_v, C]` targets on the student's grids, on the device.
        """
        boxes = boxes.to(self.device) if boxes is not None else None
        targets = []
        for maps in features:
            maps = maps.to(self.device, non_blocking=True)
            target = cached_targets(maps, self.cache_grids, self.student_grids, self.teacher_grid, boxes, self.mode)
            targets.append(target + self.position if self.position is not None else target)
        return targets


def cache_geometry(teacher: FrozenTeacher) -> dict[str, Any]:
    """What a cache records of its teacher's output: feature width, pooled grids, patch grid and input size."""
    return {
        "feature_dim": teacher.feature_dim,
        "grids": [list(grid) for grid in teacher.grids],
        "teacher_grid": [teacher.image_size // teacher.patch_size] * 2,
        "teacher_image_size": [teacher.image_size] * 2,
    }


def teacher_identity(config: TeacherConfig) -> dict[str, Any]:
    """The teacher config as a cache records it: its type and fields, a file field as the file's sha256.

    A file that does not exist here (e.g. the checkpoint on a machine that only trains from the cache) is left out,
    so it is not compared.
    """
    identity: dict[str, Any] = {"type": TeacherConfig.get_choice_name(type(config))}
    for key, value in draccus.encode(config).items():
        field_value = getattr(config, key)
        if isinstance(field_value, Path):
            if not field_value.is_file():
                logger.warning("teacher.%s=%s is not a file here: the cache's teacher is not checked against it",
                               key, field_value)
                continue
            logger.info("hashing teacher.%s=%s to identify the teacher", key, field_value)
            value = file_identity(field_value)
        identity[key] = value
    return identity


def run_manifest(teacher: TeacherConfig, rocket: RocketConfig, data: DataConfig, datasets: dict[str, dict],
                 layers: list[int], num_cameras: int) -> dict[str, Any]:
    """What determines the targets of a run: a cache serves the run when its manifest agrees on every field (its
    `layers` may be a superset, its `datasets` may hold more)."""
    return {
        "format": FORMAT_VERSION,
        "teacher": teacher_identity(teacher),
        "layers": sorted(layers),
        "pooling": rocket.pooling,
        "num_cameras": num_cameras,
        "image_size": data.image_size,
        "num_actions_chunk": data.num_actions_chunk,
        "datasets": datasets,
    }
