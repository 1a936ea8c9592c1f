"""Native OpenVLA / OpenVLA-OFT on current transformers and timm: no remote code, the published checkpoints load.

    configuration_openvla  OpenVLAConfig (config.json)
    modeling_openvla       OpenVLAModel (towers, projector, Llama)
    policy                 OpenVLAPolicy (heads, loss, predict_action, run directories)
    checkpoint             safetensors layout, OFT component files, strict key checks
    adapter                OpenVLAAdapter + the registered `openvla` backbone config
    tiny                   size presets ("tiny" for tests, "7b")
    action_heads, action_tokenizer, prompting, processing_openvla, tiny_tokenizer: OFT's side parts
"""

from rocket_openvla.backbones.openvla.adapter import OpenVLAAdapter, OpenVLABackboneConfig, lora_target_modules
from rocket_openvla.backbones.openvla.configuration_openvla import OpenVLAConfig
from rocket_openvla.backbones.openvla.modeling_openvla import OpenVLAModel, OpenVLAOutput
from rocket_openvla.backbones.openvla.policy import OpenVLAPolicy, PolicySpec, PredictedActions
from rocket_openvla.backbones.openvla.tiny import openvla_7b_config, tiny_openvla_config

__all__ = [
    "OpenVLAAdapter",
    "OpenVLABackboneConfig",
    "OpenVLAConfig",
    "OpenVLAModel",
    "OpenVLAOutput",
    "OpenVLAPolicy",
    "PolicySpec",
    "PredictedActions",
    "lora_target_modules",
    "openvla_7b_config",
    "tiny_openvla_config",
]
