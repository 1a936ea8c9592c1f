"""`LeRobotPolicy`: a lerobot pi0 / pi0.5 / SmolVLA policy as our training loop's policy module.

Its loss is the policy's own: `lerobot_policy.forward(batch)` (the flow-matching MSE over the real action dims).
lerobot's forward also returns a dict of floats it fills with `.item()`, so every call syncs with the device twice.

Run directory (see `loading.py`): `lora_adapter/` + lerobot's `config.json` when LoRA-wrapped, else lerobot's
`config.json` + `model.safetensors`; `policy_config.json` (`LeRobotPolicySpec`) and `dataset_statistics.json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from peft import PeftModel
from torch import nn

from rocket_openvla.backbones.base import PolicyOutput, save_policy_files
from rocket_openvla.backbones.lora import unwrap
from rocket_openvla.integrations.lerobot.configuration_lerobot import LeRobotPolicySpec
from rocket_openvla.normalization import DatasetStatistics


class LeRobotPolicy(nn.Module):
    """`lerobot` (a lerobot policy, possibly peft-wrapped) with its spec and dataset statistics.

    Batch keys: lerobot's (see `processing_lerobot.py`).
    """

    def __init__(self, lerobot: nn.Module, spec: LeRobotPolicySpec,
                 statistics: Mapping[str, DatasetStatistics] | None = None) -> None:
        super().__init__()
        self.lerobot = lerobot
        self.spec = spec
        self.statistics = dict(statistics or {})

    @property
    def base_policy(self) -> nn.Module:
        """The lerobot policy under any peft wrapper."""
        return unwrap(self.lerobot)

    @property
    def has_lora(self) -> bool:
        return isinstance(self.lerobot, PeftModel)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> PolicyOutput:
        """lerobot's flow-matching loss of one batch (a scalar)."""
        loss, _ = self.lerobot(dict(batch))
        return PolicyOutput(loss, {"flow_mse": loss.detach()})

    def set_dtype(self, dtype: torch.dtype) -> LeRobotPolicy:
        """Cast the lerobot policy's weights."""
        self.lerobot.to(dtype)
        return self

    def save_pretrained(self, path: str | Path) -> None:
        """Write the run-directory layout (module docstring)."""
        save_policy_files(path, self.lerobot, self.spec, self.statistics)
        if self.has_lora:  # the model settings beside the adapter: lerobot's config
            self.base_policy.config.save_pretrained(Path(path))
