"""The teacher registry: one draccus-selectable config per teacher source (`--teacher.type vggt`)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

import draccus

from rocket_openvla.align import RocketConfig
from rocket_openvla.teachers import Teacher
from rocket_openvla.teachers.base import TeacherPooling
from rocket_openvla.teachers.vggt.config import VGGT_1B, VGGT_TINY, VGGTAggregatorConfig


@dataclass(frozen=True)
class StudentView:
    """What the teacher must know about the student's images."""

    grid: tuple[int, int]  # per-camera image-token grid
    num_cameras: int
    input_format: str  # pixel layout of batch["pixel_values"] ("openvla", "pm1", "unit")


@dataclass
class TeacherConfig(draccus.ChoiceRegistry, abc.ABC):
    @abc.abstractmethod
    def num_layers(self) -> int:
        """Number of addressable teacher layers (what negative `rocket.teacher_layers` count from)."""

    @abc.abstractmethod
    def build(self, layers: list[int], student: StudentView, rocket: RocketConfig) -> Teacher:
        """The frozen teacher returning one pooled target per entry of `layers`."""


@TeacherConfig.register_subclass("vggt")
@dataclass
class VGGTCheckpointConfig(TeacherConfig):
    # VGGT-1B `model.pt` (or a safetensors export); only the `aggregator.` weights are used.
    checkpoint: Path = Path("checkpoints/VGGT-1B/model.pt")
    # Teacher input side in pixels (the release: 518, bicubic from the student's 224).
    image_size: int = 518

    def num_layers(self) -> int:
        return VGGT_1B.depth

    def build(self, layers: list[int], student: StudentView, rocket: RocketConfig) -> Teacher:
        from rocket_openvla.teachers import VGGTTeacher

        if not self.checkpoint.is_file():
            raise FileNotFoundError(
                f"teacher.checkpoint={self.checkpoint} does not exist; download VGGT-1B's model.pt and pass its path "
                "(or use --teacher.type vggt_random for a random tiny teacher)"
            )
        return VGGTTeacher.from_checkpoint(
            self.checkpoint, layers, grid=student.grid, num_cameras=student.num_cameras,
            input_format=student.input_format, pooling=TeacherPooling.from_rocket_config(rocket),
            image_size=self.image_size,
        )


@TeacherConfig.register_subclass("vggt_random")
@dataclass
class RandomVGGTConfig(TeacherConfig):
    # A randomly initialised VGGT aggregator (CPU quickstart, tests). Sizes default to the tiny test config.
    embed_dim: int = VGGT_TINY.embed_dim
    depth: int = VGGT_TINY.depth
    num_heads: int = VGGT_TINY.num_heads
    patch_embed_depth: int = VGGT_TINY.patch_embed_depth
    image_size: int = VGGT_TINY.img_size
    seed: int = 0

    def aggregator_config(self) -> VGGTAggregatorConfig:
        return VGGTAggregatorConfig(img_size=self.image_size, embed_dim=self.embed_dim, depth=self.depth,
                                    num_heads=self.num_heads, patch_embed_depth=self.patch_embed_depth)

    def num_layers(self) -> int:
        return self.depth

    def build(self, layers: list[int], student: StudentView, rocket: RocketConfig) -> Teacher:
        from rocket_openvla.teachers import VGGTTeacher

        return VGGTTeacher.random(
            layers, config=self.aggregator_config(), seed=self.seed, grid=student.grid,
            num_cameras=student.num_cameras, input_format=student.input_format,
            pooling=TeacherPooling.from_rocket_config(rocket),
        )


@TeacherConfig.register_subclass("hf")
@dataclass
class HFVisionConfig(TeacherConfig):
    # A transformers vision model (local dir or Hub id in the cache), e.g. a DINOv2 checkpoint; layers index its
    # `hidden_states` (0 = embeddings).
    model: str = "facebook/dinov2-large"
    # Child module to use, e.g. "backbone" with auto_class "AutoModelForDepthEstimation" (Depth-Anything).
    submodule: str | None = None
    auto_class: str = "AutoModel"
    image_size: int | None = None

    def num_layers(self) -> int:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(self.model)
        if self.submodule == "backbone" and hasattr(config, "backbone_config"):
            config = config.backbone_config
        return config.num_hidden_layers + 1

    def build(self, layers: list[int], student: StudentView, rocket: RocketConfig) -> Teacher:
        import transformers

        from rocket_openvla.teachers import HFVisionTeacher

        return HFVisionTeacher.from_pretrained(
            self.model, layers, auto_class=getattr(transformers, self.auto_class), submodule=self.submodule,
            grid=student.grid, num_cameras=student.num_cameras, input_format=student.input_format,
            pooling=TeacherPooling.from_rocket_config(rocket), image_size=self.image_size,
        )
