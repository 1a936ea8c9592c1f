"""VLA backbones: one adapter per family, chosen with `--backbone.type` from the registry.

Importing this package registers every built-in backbone config (`openvla`, `pi0`, the transformers VLMs)
without importing model code; the adapters load on first attribute access.
"""

from __future__ import annotations

import rocket_openvla.integrations.lerobot.backbone_config  # noqa: F401 (registers --backbone.type lerobot)
from rocket_openvla.backbones.openvla.backbone_config import OpenVLABackboneConfig
from rocket_openvla.backbones.pi0.backbone_config import PI0BackboneConfig
from rocket_openvla.backbones.registry import BackboneConfig, available_backbones
from rocket_openvla.backbones.vlm.paligemma import PaliGemmaBackboneConfig
from rocket_openvla.backbones.vlm.qwen2_5_vl import Qwen25VLBackboneConfig
from rocket_openvla.backbones.vlm.smolvlm import SmolVLMBackboneConfig
from rocket_openvla.lazy import lazy_attributes

_LAZY = {
    "BackboneAdapter": "rocket_openvla.backbones.base",
    "PolicyOutput": "rocket_openvla.backbones.base",
    "OpenVLAAdapter": "rocket_openvla.backbones.openvla.adapter",
    "PI0Adapter": "rocket_openvla.backbones.pi0.adapter",
}

__all__ = [
    "BackboneConfig", "OpenVLABackboneConfig", "PI0BackboneConfig", "PaliGemmaBackboneConfig", "available_backbones",
    "Qwen25VLBackboneConfig",
    "SmolVLMBackboneConfig",
    *_LAZY,
]

__getattr__ = lazy_attributes(__name__, _LAZY)
