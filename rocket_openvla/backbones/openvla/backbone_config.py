"""`OpenVLABackboneConfig`: the registered `--backbone.type openvla` config. Parsing it imports no model code;
`build()` does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rocket_openvla.backbones.openvla.configuration_openvla import ATTN_IMPLEMENTATIONS, PolicySpec
from rocket_openvla.backbones.openvla.tiny import SIZE_PRESETS
from rocket_openvla.backbones.registry import WEIGHT_DTYPES, BackboneConfig
from rocket_openvla.errors import check_choice

if TYPE_CHECKING:
    from rocket_openvla.backbones.openvla.adapter import OpenVLAAdapter



@BackboneConfig.register_subclass("openvla")
@dataclass
class OpenVLABackboneConfig(BackboneConfig):
    """Native OpenVLA / OpenVLA-OFT (`--backbone.type openvla`). Defaults: OFT's LIBERO recipe on the tiny model."""

    # Checkpoint directory (openvla/openvla-7b's layout, an OFT run directory or one of ours); null: random model.
    pretrained: str | None = None
    # Base VLA of a `pretrained` run directory that holds only `lora_adapter/`; null: the adapter's recorded base.
    base: str | None = None
    # Architecture of the random model when `pretrained` is null: "tiny" (tests, quickstart) or "7b".
    size: str = "tiny"
    # Heads and inputs of the policy: cameras, proprio, action head, chunk (saved as policy_config.json); null: the
    # `pretrained` run directory's policy_config.json, else OFT's LIBERO recipe (PolicySpec's defaults).
    policy: PolicySpec | None = None
    # Attention kernel of the LLM: "sdpa", "eager", "flash_attention_2" or "flex_attention".
    attn_implementation: str = "sdpa"
    # OFT's parallel decoding (every token sees every token); false keeps the LLM causal (original OpenVLA).
    bidirectional_attention: bool = True
    # Weight dtype: "bfloat16" (7B on GPU; heads as OFT, see OpenVLAPolicy.set_dtype), "float32", or null (as stored).
    dtype: str | None = None
    # Seed of the random initialisation of new weights (heads, or the whole random model).
    seed: int = 0

    def validate(self) -> None:
        check_choice("backbone.size", self.size, tuple(sorted(SIZE_PRESETS)))
        check_choice("backbone.dtype", self.dtype, (*WEIGHT_DTYPES, None), " (null: keep the checkpoint's)")
        check_choice("backbone.attn_implementation", self.attn_implementation, ATTN_IMPLEMENTATIONS)

    def build(self) -> OpenVLAAdapter:
        from rocket_openvla.backbones.openvla.adapter import build_openvla_adapter

        self.validate()
        return build_openvla_adapter(self)
