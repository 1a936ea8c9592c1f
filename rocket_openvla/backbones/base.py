"""What the finetune loop and the residual capture need from a VLA backbone, whatever its family.

Index conventions: student layer k = Hugging Face `hidden_states[k]` (0 = embeddings, n = after the
final norm); image tokens are camera-major, each camera a row-major `camera_grid`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from rocket_openvla.capture import CapturePoints


@dataclass
class PolicyOutput:
    """Result of `policy(batch)`: the scalar training loss and detached scalar metrics (no host sync)."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class BackboneAdapter(ABC):
    """One VLA family behind the interface of the training loop, the ROCKET capture and checkpointing.

    `policy` is the only module that trains: `policy(batch) -> PolicyOutput`. Every trainable part (the LoRA'd VLA,
    action heads, state projectors) is a submodule of it, so wrapping the policy in DDP syncs all of them.
    """

    # Pixel layout of `batch["pixel_values"]`, so that a teacher can rebuild the RGB images the VLA saw.
    teacher_input_format: ClassVar[str]

    @property
    @abstractmethod
    def policy(self) -> nn.Module:
        """`forward(batch: dict[str, Tensor]) -> PolicyOutput`."""

    @property
    @abstractmethod
    def processor(self) -> Any:
        """Turns raw samples into model inputs (`processor(sample)`) and batches them (`processor.collator()`)."""

    @property
    @abstractmethod
    def hidden_size(self) -> int:
        """Width D of the residual stream."""

    @property
    @abstractmethod
    def num_hidden_layers(self) -> int:
        """n decoder blocks; `hidden_states` has n + 1 entries."""

    @property
    @abstractmethod
    def num_images(self) -> int:
        """Camera images per sample."""

    @property
    @abstractmethod
    def camera_grid(self) -> tuple[int, int]:
        """Per-camera image-token grid (rows, cols)."""

    @property
    def pixel_normalization(self) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
        """`(mean, std)` per RGB channel the processor normalised the teacher-read channels of `pixel_values` with,
        so that the teacher sees exactly the student's pixels; None when the format needs no inversion."""
        return None

    @abstractmethod
    def image_token_span(self) -> tuple[int, int]:
        """`(start, count)`: the image tokens of all cameras sit at sequence positions `start .. start + count - 1`."""

    @abstractmethod
    def capture_points(self) -> CapturePoints:
        """The decoder blocks and final norm whose inputs/output are `hidden_states`; valid after `apply_lora`."""

    @property
    @abstractmethod
    def has_lora(self) -> bool:
        """True once the VLA carries LoRA adapters (applied, or loaded from a run directory)."""

    @abstractmethod
    def apply_lora(
        self,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        target_modules: str | list[str] = "all-linear",
        init: str | bool = "gaussian",
    ) -> None:
        """Wrap the VLA with peft LoRA (base weights frozen); heads and state projectors stay fully trainable."""

    @abstractmethod
    def set_dataset_statistics(self, statistics: Mapping[str, Any]) -> None:
        """Attach `{dataset_name: entry}` (OFT's `dataset_statistics.json` schema) for un-normalising and saving."""

    @abstractmethod
    def merge_lora(self) -> None:
        """Fold the LoRA adapters into the base weights in place (for deployment; training continues without LoRA)."""

    @abstractmethod
    def save_pretrained(self, path: str | Path, tag: str = "latest") -> None:
        """Write everything needed to reload the policy (weights, adapters, heads, dataset statistics)."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.policy.parameters() if p.requires_grad]
