"""What the finetune loop and the residual capture need from a VLA backbone, whatever its family.

Index conventions: student layer k = Hugging Face `hidden_states[k]` (0 = embeddings, n = after the final norm).
Image tokens are described per batch (`image_tokens`): for every camera slot in order, its `camera_grids[i]` tokens
row-major, at sequence positions that may differ per sample, with a mask for the ones that do not exist (absent
cameras, padding). The teacher sees the same camera slots in the same order, so its pooled targets line up token for
token and the same mask applies to them.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from rocket_openvla.capture import CapturePoints
from rocket_openvla.normalization import DatasetStatistics

POLICY_CONFIG_NAME = "policy_config.json"  # a policy's settings beside its weights (every backbone's own schema)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """`module` in eval mode inside the block, in its previous mode afterwards (inference during training)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@dataclass(frozen=True)
class ImageTokens:
    """Where one batch's image tokens sit, in the teacher's token order (camera slot-major, then row-major).

    Attributes:
        positions: `[B, T]` int64 sequence position of each token, `T = sum(gh * gw over camera_grids)`; tokens that
            do not exist point at any valid position (they are masked).
        mask: `[B, T]` bool, False for the tokens of absent cameras and of padding.
    """

    positions: torch.Tensor
    mask: torch.Tensor


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

    # Pixel layout of `teacher_images(batch)`, so that a teacher can rebuild the RGB images the VLA saw.
    teacher_input_format: ClassVar[str]

    def __init__(self, policy: nn.Module, processor: Any) -> None:
        self._policy = policy
        self._processor = processor

    @property
    def policy(self) -> nn.Module:
        """`forward(batch: dict[str, Tensor]) -> PolicyOutput`."""
        return self._policy

    @property
    def processor(self) -> Any:
        """Turns raw samples into model inputs (`processor(sample)`) and batches them (`processor.collator()`)."""
        return self._processor

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
        """Camera slots per sample (the teacher's frames), present or not."""

    @property
    @abstractmethod
    def camera_grids(self) -> tuple[tuple[int, int], ...]:
        """Image-token grid (rows, cols) of each camera slot."""

    @property
    def pixel_normalization(self) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
        """`(mean, std)` per RGB channel the processor normalised the teacher-read channels of `pixel_values` with,
        so that the teacher sees exactly the student's pixels; None when the format needs no inversion."""
        return None

    @abstractmethod
    def image_tokens(self, batch: Mapping[str, Any]) -> ImageTokens:
        """Positions and validity of the batch's image tokens (see `ImageTokens`), without a host sync."""

    def teacher_images(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The batch's camera images in `teacher_input_format`, one frame per camera slot."""
        return batch["pixel_values"]

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

    def set_dataset_statistics(self, statistics: Mapping[str, Mapping[str, Any] | DatasetStatistics]) -> None:
        """Attach `{dataset_name: entry}` (OFT's `dataset_statistics.json` schema, or parsed entries) to the policy,
        which un-normalises its actions with them and saves them."""
        self.policy.statistics = {
            name: entry if isinstance(entry, DatasetStatistics) else DatasetStatistics.from_dict(entry, where=name)
            for name, entry in statistics.items()
        }

    @property
    @abstractmethod
    def action_chunk(self) -> int:
        """Actions per sample the policy trains on (must equal `data.num_actions_chunk`)."""

    def ddp_find_unused_parameters(self, student_layers: Sequence[int]) -> bool:
        """True when some trainable parameters get no gradient in a step with these aligned `hidden_states` indices
        (none for the baseline), so DDP must look for them."""
        return False

    @abstractmethod
    def merge_lora(self) -> None:
        """Fold the LoRA adapters into the base weights in place (for deployment; training continues without LoRA)."""

    @abstractmethod
    def save_pretrained(self, path: str | Path, tag: str = "latest") -> None:
        """Write everything needed to reload the policy (weights, adapters, heads, dataset statistics)."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.policy.parameters() if p.requires_grad]
