"""`TeacherCacheConfig`: where precomputed teacher targets live and how they are stored; draccus-friendly, torch-free.

The same section serves both jobs: `vla-scripts/precompute_teacher.py` writes the cache into `dir`, and
`vla-scripts/finetune_rocket.py --teacher_cache.dir DIR` trains from it without building the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rocket_openvla.errors import ConfigError, check_choice

CACHE_DTYPES = ("bfloat16", "float16", "float32", "float8_e4m3fn", "int8")


@dataclass
class TeacherCacheConfig:
    # Directory of a teacher-feature cache. Training: read the targets from it and never build the teacher; null:
    # run the teacher on the fly. Precompute: where the cache is written.
    dir: Path | None = None
    # Precompute: teacher layers to store, a superset of the run's `rocket.teacher_layers` (so one cache serves
    # several layer choices); null: exactly the run's teacher layers.
    layers: list[int] | None = None
    # Precompute: side G of the square per-camera grid the teacher features are pooled to; null: the student's own
    # grid of each camera (exact targets without augmentation, the smallest cache). A finer grid costs (G / g)^2 in
    # size and keeps detail for the crop the student's images get.
    grid: int | None = None
    # Precompute: storage dtype: bfloat16, float16, float32, or 8-bit float8_e4m3fn / int8 (per-token absmax scales).
    dtype: str = "bfloat16"
    # Precompute: cache every stride-th training frame of each episode; the others carry no target and are masked
    # out of the alignment loss. The cache is stride x smaller; the alignment sees 1 / stride of the frames.
    stride: int = 1
    # Precompute: episodes per shard file (a LIBERO episode is ~3 GB at the paper's 10 layers in bfloat16).
    episodes_per_shard: int = 1
    # Precompute: frames per teacher forward pass.
    batch_size: int = 16
    # Training: check each shard's sha256 the first time this process reads it (in a reader thread, off the
    # training thread); sizes are always checked before step 1.
    verify_checksums: bool = True
    # Training: threads that read a batch's targets while the batch is being prepared.
    num_readers: int = 2

    @property
    def enabled(self) -> bool:
        return self.dir is not None

    def validate(self) -> None:
        check_choice("teacher_cache.dtype", self.dtype, CACHE_DTYPES)
        for name in ("stride", "episodes_per_shard", "batch_size", "num_readers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"teacher_cache.{name}={getattr(self, name)}; use 1 or more")
        if self.grid is not None and self.grid < 1:
            raise ConfigError(f"teacher_cache.grid={self.grid}; use a positive grid side or null (the student's grid)")
        if self.layers is not None and not self.layers:
            raise ConfigError("teacher_cache.layers is empty; list the teacher layers to store, or null")
