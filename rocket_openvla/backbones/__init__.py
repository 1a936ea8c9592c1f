"""VLA backbones: one adapter per family, chosen with `--backbone.type` from the registry.

Importing this package registers every built-in backbone config (currently `openvla`) without importing model code;
the adapters load on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from rocket_openvla.backbones.openvla.backbone_config import OpenVLABackboneConfig
from rocket_openvla.backbones.registry import BackboneConfig, available_backbones

_LAZY = {
    "BackboneAdapter": "rocket_openvla.backbones.base",
    "PolicyOutput": "rocket_openvla.backbones.base",
    "OpenVLAAdapter": "rocket_openvla.backbones.openvla.adapter",
}

__all__ = ["BackboneConfig", "OpenVLABackboneConfig", "available_backbones", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
