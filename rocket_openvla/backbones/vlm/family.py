"""One design for every transformers VLM: `VLMFamily` holds what differs between families (model class, tiny config
and processor, where the image tokens and the language model are, how a sample is encoded and batched);
`VLMBackboneConfig` is the registered config each family subclasses. Everything else (policy, processor, adapter)
is shared. A family module imports transformers only inside its methods, so registering it stays light.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rocket_openvla.backbones.registry import WEIGHT_DTYPES, BackboneConfig
from rocket_openvla.backbones.vlm.configuration_vlm import VLMPolicySpec
from rocket_openvla.errors import check_choice

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from rocket_openvla.backbones.vlm.adapter import VLMAdapter

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


class VLMFamily(abc.ABC):
    """What one transformers VLM family needs beyond the shared VLM backbone."""

    # `model_type` of the family's checkpoints (their config.json), checked when one is loaded.
    model_type: ClassVar[str]
    # Per-token model inputs besides `input_ids` / `attention_mask` (e.g. Qwen2.5-VL's `mm_token_type_ids`); the
    # shared processor extends them with 0 for the appended proprio / action tokens and pads them with 0.
    token_inputs: ClassVar[tuple[str, ...]] = ()
    # The model's vision inputs, as `collate_vision` returns them (e.g. `pixel_values`, `image_grid_thw`).
    vision_input_names: ClassVar[tuple[str, ...]] = ("pixel_values",)
    # Whether a camera's token grid follows its size (Qwen2.5-VL) or the processor resizes every camera to the
    # model's own input size (PaliGemma, SmolVLM).
    grid_follows_image_size: ClassVar[bool] = False

    @abc.abstractmethod
    def model_class(self) -> type:
        """The transformers `*ForConditionalGeneration` class."""

    @abc.abstractmethod
    def tiny_config(self) -> Any:
        """A tiny random configuration of the real architecture (tests, CPU quickstart)."""

    @abc.abstractmethod
    def tiny_processor(self) -> Any:
        """The family's processor with a tiny offline tokenizer that knows the tiny config's special tokens."""

    def load_processor(self, directory: Path) -> Any:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(directory)

    def language_model(self, model: nn.Module) -> nn.Module:
        """The decoder whose `hidden_states` ROCKET aligns."""
        return model.model.language_model

    def image_token_id(self, config: Any) -> int:
        return config.image_token_id

    @abc.abstractmethod
    def camera_grid(self, config: Any, image_size: int | None) -> tuple[int, int]:
        """Token grid of one camera image of side `image_size` (before the processor; None: the data's own size,
        only for families whose grid does not follow it)."""

    @abc.abstractmethod
    def encode(self, processor: Any, images: Sequence[np.ndarray], instruction: str) -> dict[str, torch.Tensor]:
        """One sample through the family's processor: `input_ids [L]`, the `token_inputs` `[L]` and the vision inputs,
        with the image tokens of the cameras in order."""

    @abc.abstractmethod
    def collate_vision(self, examples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The vision inputs of a batch from those `encode` returned per sample."""


@dataclass
class VLMBackboneConfig(BackboneConfig):
    """A transformers VLM with an OFT-style action head; each family registers a subclass (`--backbone.type`)."""

    family_class: ClassVar[str]  # "module:Class" of the family, imported in build()
    side_file_fields: ClassVar[tuple[str, ...]] = ("processor",)

    # Checkpoint directory of the VLM (its Hugging Face layout) or one of our run directories; null: a tiny random VLM.
    pretrained: str | None = None
    # Base VLM of a `pretrained` run directory that holds only `lora_adapter/`; null: the adapter's recorded base.
    base: str | None = None
    # Directory with the family's processor files (tokenizer, image processor); null: `pretrained`'s own (the tiny
    # offline one for a random VLM).
    processor: str | None = None
    # Action queries, proprio, chunk, camera sizes, bidirectional attention (saved as policy_config.json); null: the
    # `pretrained` run directory's policy_config.json, else LIBERO's (VLMPolicySpec's defaults).
    policy: VLMPolicySpec | None = None
    # Attention kernel: "sdpa" or "eager".
    attn_implementation: str = "sdpa"
    # Weight dtype: "bfloat16" (GPU; the proprio projector and action queries stay float32, as OFT), "float32",
    # or null (as stored; random models: float32).
    dtype: str | None = None
    # Seed of the random initialisation of new weights (action head, queries, or the whole random VLM).
    seed: int = 0

    def validate(self) -> None:
        check_choice("backbone.dtype", self.dtype, (*WEIGHT_DTYPES, None), " (null: keep the checkpoint's)")
        check_choice("backbone.attn_implementation", self.attn_implementation, ATTN_IMPLEMENTATIONS)

    def family(self) -> VLMFamily:
        import importlib

        module, name = self.family_class.split(":")
        return getattr(importlib.import_module(module), name)()

    def build(self) -> VLMAdapter:
        from rocket_openvla.backbones.vlm.adapter import build_vlm_adapter

        self.validate()
        return build_vlm_adapter(self, self.family())
