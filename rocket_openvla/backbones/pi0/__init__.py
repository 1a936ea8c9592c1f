"""transformers' PI0 (`PI0ForConditionalGeneration`: PaliGemma VLM + Gemma action expert, flow matching) as a
ROCKET backbone (`--backbone.type pi0`).

    configuration_pi0  PI0PolicySpec (policy_config.json)
    backbone_config    PI0BackboneConfig: the registered config (no model code)
    processing_pi0     our samples -> PI0 inputs (camera slots, prompt, padded state/actions), collator
    policy             PI0Policy (loss, predict_action, run directories)
    adapter            PI0Adapter (the training loop's view: image tokens per camera, masks) and build_pi0_adapter
    tiny               the random tiny model (tests, CPU quickstart; tokenizer: backbones/char_tokenizer)

Names below load their module on first access, so importing the package (or the config) loads no model code.
"""

from __future__ import annotations

from rocket_openvla.lazy import lazy_attributes

_LAZY = {
    "PI0BackboneConfig": "rocket_openvla.backbones.pi0.backbone_config",
    "PI0PolicySpec": "rocket_openvla.backbones.pi0.configuration_pi0",
    "PI0Adapter": "rocket_openvla.backbones.pi0.adapter",
    "PI0Policy": "rocket_openvla.backbones.pi0.policy",
    "PI0Actions": "rocket_openvla.backbones.pi0.policy",
    "PI0InputProcessor": "rocket_openvla.backbones.pi0.processing_pi0",
    "tiny_pi0_config": "rocket_openvla.backbones.pi0.tiny",
}

__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
