"""lerobot's pi0, pi0.5 and SmolVLA policies as ROCKET backbones (`--backbone.type lerobot`), and the pieces a
lerobot training script needs to add the ROCKET loss itself (`layout`: capture points and image tokens).

    backbone_config        LeRobotBackboneConfig: the registered config (imports neither lerobot nor model code)
    configuration_lerobot  LeRobotPolicySpec (policy_config.json)
    layout                 where ROCKET reads a lerobot policy: capture points, camera slots, image tokens (torch only)
    processing_lerobot     our samples -> lerobot's batch (camera keys, state, action chunk, tokenized task)
    loading                lerobot configs, random / tiny / pretrained policies, tokenizers
    policy                 LeRobotPolicy (the loss, run directories)
    adapter                LeRobotAdapter (the training loop's view), build_lerobot_adapter, wrap_lerobot_policy
    tiny                   tiny lerobot models with the real architecture (tests, quickstart)

Everything but `backbone_config`, `configuration_lerobot` and `layout` needs lerobot 0.6.1 (Python >= 3.12).
Names below load their module on first access.
"""

from __future__ import annotations

from rocket_openvla.lazy import lazy_attributes

_LAZY = {
    "LeRobotBackboneConfig": "rocket_openvla.integrations.lerobot.backbone_config",
    "LeRobotPolicySpec": "rocket_openvla.integrations.lerobot.configuration_lerobot",
    "LeRobotAdapter": "rocket_openvla.integrations.lerobot.adapter",
    "wrap_lerobot_policy": "rocket_openvla.integrations.lerobot.adapter",
    "LeRobotPolicy": "rocket_openvla.integrations.lerobot.policy",
    "LeRobotInputProcessor": "rocket_openvla.integrations.lerobot.processing_lerobot",
    "capture_points": "rocket_openvla.integrations.lerobot.layout",
    "image_tokens": "rocket_openvla.integrations.lerobot.layout",
    "student_images": "rocket_openvla.integrations.lerobot.layout",
    "tiny_lerobot_models": "rocket_openvla.integrations.lerobot.tiny",
}

__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
