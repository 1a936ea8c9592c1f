"""Native OpenVLA / OpenVLA-OFT on current transformers and timm: no remote code, the published checkpoints load.

    configuration_openvla  OpenVLAConfig (config.json), PolicySpec (policy_config.json)
    backbone_config        OpenVLABackboneConfig: the registered `--backbone.type openvla` config (no model code)
    modeling_openvla       OpenVLAModel (towers, projector, Llama)
    policy                 OpenVLAPolicy (heads, loss, predict_action, run directories)
    processing_openvla     image transform (ImageNormalization, preprocessor_config.json), prompts, collator
    checkpoint             safetensors layout, OFT component files, strict key checks
    oft_format             what OpenVLA-OFT's evaluation loaders need: portable tokenizer files, OFT's .pt heads
    adapter                OpenVLAAdapter (the training loop's view) and build_openvla_adapter
    tiny                   size presets ("tiny" for tests, "7b")
    action_tokenizer, prompting, tiny_tokenizer: OFT's side parts (its heads: rocket_openvla.backbones.action_heads)

Names below load their module on first access, so importing the package (or the config) loads no model code.
"""

from __future__ import annotations

from rocket_openvla.lazy import lazy_attributes

_LAZY = {
    "OpenVLABackboneConfig": "rocket_openvla.backbones.openvla.backbone_config",
    "OpenVLAConfig": "rocket_openvla.backbones.openvla.configuration_openvla",
    "PolicySpec": "rocket_openvla.backbones.openvla.configuration_openvla",
    "openvla_7b_config": "rocket_openvla.backbones.openvla.tiny",
    "tiny_openvla_config": "rocket_openvla.backbones.openvla.tiny",
    "OpenVLAAdapter": "rocket_openvla.backbones.openvla.adapter",
    "lora_target_modules": "rocket_openvla.backbones.openvla.adapter",
    "OpenVLAModel": "rocket_openvla.backbones.openvla.modeling_openvla",
    "OpenVLAOutput": "rocket_openvla.backbones.openvla.modeling_openvla",
    "OpenVLAPolicy": "rocket_openvla.backbones.openvla.policy",
    "PredictedActions": "rocket_openvla.backbones.openvla.policy",
    "ImageNormalization": "rocket_openvla.backbones.openvla.processing_openvla",
    "OpenVLAProcessor": "rocket_openvla.backbones.openvla.processing_openvla",
}

__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
