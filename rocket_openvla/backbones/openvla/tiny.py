"""Size presets of the OpenVLA architecture: "tiny" (tests, CPU quickstart) and "7b" (OpenVLA-7B).

The tiny model is the one of the golden parity run against the original OFT code (tests/fixtures): the real timm
tower architectures with DINOv2 64-wide / SigLIP 48-wide, 3 blocks, 4 heads, and a 2-layer Llama with hidden 64.
The vocabulary stays at OpenVLA's 32064, because action-token and prompt ids are fixed numbers; images stay 224 px
(256 patches each).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rocket_openvla.backbones.openvla.configuration_openvla import OpenVLAConfig

TINY_VISION_TOWER_OVERRIDES = (
    {"embed_dim": 64, "depth": 3, "num_heads": 4},  # DINOv2 vit_large_patch14_reg4_dinov2.lvd142m
    {"embed_dim": 48, "depth": 3, "num_heads": 4},  # SigLIP vit_so400m_patch14_siglip_224
)
TINY_TEXT_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 172,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
}


def tiny_openvla_config(**overrides: Any) -> OpenVLAConfig:
    """The tiny test architecture; `overrides` replace `OpenVLAConfig` fields (`text_config` is merged)."""
    text_config = {**TINY_TEXT_CONFIG, **overrides.pop("text_config", {})}
    overrides.setdefault("vision_tower_overrides", TINY_VISION_TOWER_OVERRIDES)
    return OpenVLAConfig(text_config=text_config, **overrides)


def openvla_7b_config(**overrides: Any) -> OpenVLAConfig:
    """OpenVLA-7B's architecture (DINOv2 ViT-L/14 + SigLIP so400m/14, Llama-2-7B)."""
    return OpenVLAConfig(**overrides)


SIZE_PRESETS: dict[str, Callable[..., OpenVLAConfig]] = {"tiny": tiny_openvla_config, "7b": openvla_7b_config}
