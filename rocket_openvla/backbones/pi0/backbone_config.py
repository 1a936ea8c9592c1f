"""`PI0BackboneConfig`: the registered `--backbone.type pi0` config (transformers' PI0). Parsing it imports no model
code; `build()` does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rocket_openvla.backbones.pi0.configuration_pi0 import PI0PolicySpec
from rocket_openvla.backbones.pi0.tiny import SIZE_PRESETS
from rocket_openvla.backbones.registry import WEIGHT_DTYPES, BackboneConfig
from rocket_openvla.errors import check_choice

if TYPE_CHECKING:
    from rocket_openvla.backbones.pi0.adapter import PI0Adapter

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flex_attention")  # flash attention drops PI0's bidirectional action mask


@BackboneConfig.register_subclass("pi0")
@dataclass
class PI0BackboneConfig(BackboneConfig):
    """transformers' PI0 (PaliGemma VLM + Gemma action expert, flow matching). Defaults: LIBERO on the tiny model."""

    side_file_fields: ClassVar[tuple[str, ...]] = ("tokenizer",)

    # PI0 checkpoint directory (lerobot/pi0_base's Hugging Face layout) or one of our run directories; null: random.
    pretrained: str | None = None
    # Base model of a `pretrained` run directory that holds only `lora_adapter/`; null: the adapter's recorded base.
    base: str | None = None
    # Directory with PaliGemma's tokenizer; null: `pretrained`'s (or `base`'s) own files, the tiny one for `size`.
    tokenizer: str | None = None
    # Architecture of the random model when `pretrained` is null: "tiny" (tests, quickstart) or "base" (PI0's).
    size: str = "tiny"
    # Camera slots, action and state dims, chunk size (saved as policy_config.json); null: the `pretrained` run
    # directory's policy_config.json, else LIBERO's (PI0PolicySpec's defaults).
    policy: PI0PolicySpec | None = None
    # Attention kernel: "sdpa", "eager" or "flex_attention" (flash attention would drop PI0's bidirectional mask).
    attn_implementation: str = "sdpa"
    # Weight dtype: "bfloat16" (GPU), "float32", or null (as stored; random models: float32).
    dtype: str | None = None
    # Recompute the vision tower in backward (PI0's whole-model checkpointing would break its key/value cache).
    vision_gradient_checkpointing: bool = False
    # Seed of the random initialisation (the whole random model).
    seed: int = 0

    def validate(self) -> None:
        check_choice("backbone.size", self.size, tuple(sorted(SIZE_PRESETS)))
        check_choice("backbone.dtype", self.dtype, (*WEIGHT_DTYPES, None), " (null: keep the checkpoint's)")
        check_choice("backbone.attn_implementation", self.attn_implementation, ATTN_IMPLEMENTATIONS)

    def build(self) -> PI0Adapter:
        from rocket_openvla.backbones.pi0.adapter import build_pi0_adapter

        self.validate()
        return build_pi0_adapter(self)
