"""transformers VLMs as ROCKET students with OpenVLA-OFT's parallel-decoding action head: one shared design, a
small part per family.

    configuration_vlm  VLMPolicySpec (policy_config.json)
    family             VLMFamily (what differs per family) and VLMBackboneConfig (the registered configs' base)
    processing_vlm     our samples -> the family's inputs + proprio / action-query slots, collator
    policy             VLMActionPolicy (VLM + action queries + proprio projector + L1 head; run directories)
    adapter            VLMAdapter (image tokens per camera by the image-token id) and build_vlm_adapter
    paligemma, ...     one module per family: its VLMFamily and its registered config

Names below load their module on first access; importing a family module registers its config without model code.
"""

from __future__ import annotations

from rocket_openvla.lazy import lazy_attributes

_LAZY = {
    "VLMPolicySpec": "rocket_openvla.backbones.vlm.configuration_vlm",
    "VLMFamily": "rocket_openvla.backbones.vlm.family",
    "VLMBackboneConfig": "rocket_openvla.backbones.vlm.family",
    "VLMInputProcessor": "rocket_openvla.backbones.vlm.processing_vlm",
    "VLMActionPolicy": "rocket_openvla.backbones.vlm.policy",
    "VLMActions": "rocket_openvla.backbones.vlm.policy",
    "VLMAdapter": "rocket_openvla.backbones.vlm.adapter",
}

__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
