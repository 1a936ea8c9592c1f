"""VLA backbones: one adapter per family, chosen with `--backbone.type` from the registry.

Importing this package registers every built-in backbone config (currently `openvla`).
"""

from rocket_openvla.backbones.base import BackboneAdapter, PolicyOutput
from rocket_openvla.backbones.openvla.adapter import OpenVLAAdapter, OpenVLABackboneConfig
from rocket_openvla.backbones.registry import BackboneConfig, available_backbones

__all__ = [
    "BackboneAdapter",
    "BackboneConfig",
    "OpenVLAAdapter",
    "OpenVLABackboneConfig",
    "PolicyOutput",
    "available_backbones",
]
