"""The teacher registry: one draccus-selectable config per teacher source (`--teacher.type vggt`).

A new teacher is one `@TeacherConfig.register_subclass("<name>")` dataclass whose `build()` returns a `Teacher`.
Config classes import no model code (`build()` does), so parsing and validating a config stays fast.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import draccus

from rocket_openvla.align import RocketConfig
from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.teachers.base import Teacher, TeacherPooling
from rocket_openvla.teachers.vggt.config import VGGT_1B, VGGT_TINY, VGGTAggregatorConfig

DEFAULT_TEACHER = "vggt"
RGB = tuple[float, float, float]


@dataclass(frozen=True)
class StudentView:
    """What the teacher must know about the student's images."""

    grids: tuple[tuple[int, int], ...]  # image-token grid of each camera slot
    num_cameras: int
    input_format: str  # pixel layout of batch["pixel_values"] ("openvla", "pm1", "unit")
    # (mean, std) the student normalised the channels the teacher reads with ("openvla": the DINOv2 half); None: none.
    pixel_normalization: tuple[RGB, RGB] | None = None

    @classmethod
    def of(cls, adapter: Any, grids: tuple[tuple[int, int], ...] | None = None) -> StudentView:
        """The view of a backbone adapter (anything with `camera_grids`, `num_images`, `teacher_input_format` and
        `pixel_normalization`); `grids` replaces its camera grids."""
        return cls(adapter.camera_grids if grids is None else grids, adapter.num_images, adapter.teacher_input_format,
                   adapter.pixel_normalization)


@dataclass
class TeacherConfig(draccus.ChoiceRegistry, abc.ABC):
    """Base of the registered teacher configs."""

    @classmethod
    def default_choice_name(cls) -> str:
        return DEFAULT_TEACHER

    def validate(self) -> None:
        """Checks that need no model or files; raise `ConfigError` naming the field, the value and the fix."""

    @abc.abstractmethod
    def num_layers(self) -> int:
        """Number of addressable teacher layers (what negative `rocket.teacher_layers` count from)."""

    @abc.abstractmethod
    def build(self, layers: list[int], student: StudentView, rocket: RocketConfig) -> Teacher:
        """The frozen teacher returning one pooled target per entry of `layers`."""


@TeacherConfig.register_subclass("vggt")
@dataclass
class VGGTCheckpointConfig(TeacherConfig):
    """VGGT-1B's aggregator loaded from the official checkpoint (the ROCKET teacher)."""

    # VGGT-1B `model.pt` (or a safetensors export of it); only the `aggregator.` weights are used.
    checkpoint: Path = Path("checkpoints/VGGT-1B/model.pt")
    # Teacher input side in pixels, a multiple of 14 (the release: 518, bicubic from the student's 224).
    image_size: int = 518

    def validate(self) -> None:
        _check_image_size(self.image_size, VGGT_1B.patch_size)

    def num_layers(self) -> int:
        return VGGT_1B.depth

    def build(self, layers: list[int], student: StudentView, rocket: RocketConfig) -> Teacher:
        from rocket_openvla.teachers.vggt.teacher import VGGTTeacher

        if not self.checkpoint.is_file():
            raise MissingInputError(
                f"teacher.checkpoint={self.checkpoint} does not exist; download VGGT-1B's model.pt and pass its path "
                "(or use --teacher.type vggt_random for a random tiny teacher)"
            )
        return VGGTTeacher.from_checkpoint(
            self.checkpoint, layers, grid=student.grids, num_cameras=student.num_cameras,
            input_format=student.input_format, pixel_normalization=student.pixel_normalization,
            pooling=_pooling(rocket), image_size=self.image_size,
        )


@TeacherConfig.register_subclass("vggt_random")
@dataclass
class RandomVGGTConfig(TeacherConfig):
    """A randomly initialised VGGT aggregator (CPU quickstart, tests); sizes default to the tiny test config."""

    # Token width of each attention stream (targets are 2 x embed_dim wide).
    embed_dim: int = VGGT_TINY.embed_dim
    # Alternating-attention blocks (the addressable teacher layers).
    depth: int = VGGT_TINY.depth
    # Attention heads (must divide embed_dim).
    num_heads: int = VGGT_TINY.num_heads
    # Blocks of the DINOv2 patch embedder.
    patch_embed_depth: int = VGGT_TINY.patch_embed_depth
    # Teacher input side in pixels, a multiple of 14 (224: 16 x 16 patches, the OpenVLA student's grid).
    image_size: int = VGGT_TINY.img_size
    # Seed of the random weights.
    seed: int = 0

    def validate(self) -> None:
        _check_image_size(self.image_size, VGGT_TINY.patch_size)
        for name in ("embed_dim", "depth", "num_heads", "patch_embed_depth"):
            if getattr(self, name) < 1:
                raise ConfigError(f"teacher.{name}={getattr(self, name)}; use 1 or more")
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"teacher.embed_dim={self.embed_dim} is not divisible by teacher.num_heads={self.num_heads}"
            )

    def aggregator_config(self) -> VGGTAggregatorConfig:
        return VGGTAggregatorConfig(img_size=self.image_size, embed_dim=self.embed_dim, depth=self.depth,
                                    num_heads=self.num_heads, patch_embed_depth=self.patch_embed_depth)

    def num_layers(self) -> int:
        return self.depth

    def build(self, layers: list[int], student: StudentView, rocket: RocketConfig) -> Teacher:
        from rocket_openvla.teachers.vggt.teacher import VGGTTeacher

        return VGGTTeacher.random(
            layers, config=self.aggregator_config(), seed=self.seed, grid=student.grids,
            num_cameras=student.num_cameras, input_format=student.input_format,
            pixel_normalization=student.pixel_normalization, pooling=_pooling(rocket),
        )


@TeacherConfig.register_subclass("hf")
@dataclass
class HFVisionConfig(TeacherConfig):
    """A transformers vision model; `rocket.teacher_layers` index its `hidden_states` (0 = embeddings)."""

    # Local directory or Hub id already in the local cache (nothing is downloaded), e.g. a DINOv2 checkpoint.
    model: str = "facebook/dinov2-large"
    # Child module to use, e.g. "backbone" with auto_class "AutoModelForDepthEstimation" (Depth-Anything).
    submodule: str | None = None
    # transformers auto class that loads `model`, e.g. "AutoModel" or "AutoModelForDepthEstimation".
    auto_class: str = "AutoModel"
    # Teacher input side in pixels; null: the model config's image_size.
    image_size: int | None = None

    def num_layers(self) -> int:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(self.model)
        if self.submodule == "backbone" and hasattr(config, "backbone_config"):
            config = config.backbone_config
        return config.num_hidden_layers + 1

    def build(self, layers: list[int], student: StudentView, rocket: RocketConfig) -> Teacher:
        import transformers

        from rocket_openvla.teachers.hf_vision import HFVisionTeacher

        auto_class = getattr(transformers, self.auto_class, None)
        if auto_class is None:
            raise ConfigError(f"teacher.auto_class={self.auto_class!r} is not a transformers class, e.g. AutoModel")
        return HFVisionTeacher.from_pretrained(
            self.model, layers, auto_class=auto_class, submodule=self.submodule,
            grid=student.grids, num_cameras=student.num_cameras, input_format=student.input_format,
            pixel_normalization=student.pixel_normalization, pooling=_pooling(rocket), image_size=self.image_size,
        )


def _pooling(rocket: RocketConfig) -> TeacherPooling:
    return TeacherPooling.from_rocket_config(rocket)


def _check_image_size(image_size: int, patch_size: int) -> None:
    if image_size < patch_size or image_size % patch_size:
        raise ConfigError(
            f"teacher.image_size={image_size} must be a positive multiple of the teacher patch size {patch_size}"
        )
