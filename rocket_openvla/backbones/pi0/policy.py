"""`PI0Policy`: transformers' `PI0ForConditionalGeneration` (PaliGemma VLM + Gemma action expert, flow matching) as
a policy: its training loss, `predict_action` through PI0's own sampler, and the run-directory layout.

Run directory:
    lora_adapter/                      peft adapter (when the model is LoRA-wrapped; the action projections are
                                       trained fully and saved with it)
    config.json + model*.safetensors   the full model (when not LoRA-wrapped, e.g. merged)
    policy_config.json                 the `PI0PolicySpec`
    dataset_statistics.json            action/state statistics, keyed by dataset
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from torch import nn
from transformers import PI0ForConditionalGeneration

from rocket_openvla.backbones.base import POLICY_CONFIG_NAME, PolicyOutput, eval_mode, save_policy_files
from rocket_openvla.backbones.hf_checkpoints import MODEL_CONFIG_NAME, load_pretrained_strict
from rocket_openvla.backbones.lora import LORA_DIR, load_with_lora_adapter, unwrap
from rocket_openvla.backbones.pi0.configuration_pi0 import PI0PolicySpec
from rocket_openvla.backbones.registry import spec_from_dict
from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.normalization import (
    STATISTICS_NAME,
    DatasetStatistics,
    NormalizationType,
    load_dataset_statistics,
    select_unnorm_key,
)

logger = logging.getLogger(__name__)



@dataclass
class PI0Actions:
    """`predict_action` output: `actions` (un-normalised) and `normalized_actions`, `[B, chunk, action_dim]` fp32."""

    actions: torch.Tensor
    normalized_actions: torch.Tensor


class PI0Policy(nn.Module):
    """`model` (PI0ForConditionalGeneration, possibly peft-wrapped) with the policy's spec and dataset statistics.

    Batch keys (the PI0 collator's): `input_ids [B, L]`, `attention_mask [B, L]`, `pixel_values [B, slots, 3, S, S]`
    in [-1, 1], `pixel_attention_mask [B, slots]`, `state [B, max_state_dim]`, `actions [B, chunk, max_action_dim]`.
    """

    def __init__(
        self, model: nn.Module, spec: PI0PolicySpec, statistics: Mapping[str, DatasetStatistics] | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.statistics = dict(statistics or {})
        config = self.base_model.config
        if spec.action_dim > config.max_action_dim or spec.proprio_dim > config.max_state_dim:
            raise ConfigError(
                f"backbone.policy.action_dim={spec.action_dim} / proprio_dim={spec.proprio_dim} exceed the model's "
                f"max_action_dim={config.max_action_dim} / max_state_dim={config.max_state_dim}; the model pads up "
                "to those and cannot take more"
            )

    @property
    def base_model(self) -> PI0ForConditionalGeneration:
        """The PI0 model under any peft wrapper."""
        return unwrap(self.model)

    @property
    def has_lora(self) -> bool:
        return isinstance(self.model, PeftModel)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> PolicyOutput:
        """PI0's flow-matching loss (MSE between predicted and target velocity) of one batch."""
        output = self.model(
            state=batch["state"],
            input_ids=batch["input_ids"],
            pixel_values=batch["pixel_values"],
            pixel_attention_mask=batch["pixel_attention_mask"],
            attention_mask=batch["attention_mask"],
            actions=batch["actions"],
        )
        return PolicyOutput(output.loss, {"flow_mse": output.loss.detach()})

    @torch.no_grad()
    def predict_action(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        pixel_attention_mask: torch.Tensor,
        proprio: torch.Tensor | None = None,
        unnorm_key: str | None = None,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        normalized_proprio: torch.Tensor | None = None,
    ) -> PI0Actions:
        """Action chunks by PI0's own flow-matching sampler (`sample_actions`), un-normalised with the dataset's
        statistics. Runs in eval mode (the previous mode is restored) and without gradients.

        Args:
            input_ids, attention_mask, pixel_values, pixel_attention_mask: as `PI0InputProcessor` builds them.
            proprio: `[B, proprio_dim]` raw robot state, normalised here with the `unnorm_key` dataset's statistics;
                or `normalized_proprio`, already normalised.
            num_steps: denoising steps (default: the model's `num_inference_steps`).
            generator: seeds the starting noise.
        """
        key = select_unnorm_key(self.statistics, unnorm_key)
        kind = NormalizationType(self.spec.normalization)
        if (proprio is None) == (normalized_proprio is None):
            raise ValueError("pass the robot state once: either proprio (raw) or normalized_proprio")
        if proprio is not None:
            normalized_proprio = self.statistics[key].normalize_proprio(proprio, kind, key)
        config = self.base_model.config
        state = torch.nn.functional.pad(normalized_proprio.float(), (0, config.max_state_dim - self.spec.proprio_dim))
        noise = torch.randn(
            (input_ids.shape[0], config.chunk_size, config.max_action_dim), generator=generator,
            device=generator.device if generator is not None else "cpu",
        ).to(pixel_values.device)
        dtype = next(self.base_model.parameters()).dtype
        with eval_mode(self):
            sampled = self.base_model.sample_actions(
                state=state.to(pixel_values.device, dtype), input_ids=input_ids, pixel_values=pixel_values.to(dtype),
                noise=noise.to(dtype), attention_mask=attention_mask, pixel_attention_mask=pixel_attention_mask,
                num_steps=num_steps,
            )
        normalized = sampled[..., : self.spec.action_dim].float()
        return PI0Actions(self.statistics[key].action.unnormalize(normalized, kind), normalized)

    def set_dtype(self, dtype: torch.dtype) -> PI0Policy:
        """Cast the model's weights (PI0 computes its timestep embedding in float32 whatever the dtype)."""
        self.model.to(dtype)
        return self

    # --- checkpoints ---------------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """Write the run-directory layout (module docstring)."""
        save_policy_files(path, self.model, self.spec, self.statistics)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        base: str | Path | None = None,
        spec: PI0PolicySpec | None = None,
        trainable_lora: bool = False,
        dtype: torch.dtype | None = None,
        **config_overrides: Any,
    ) -> PI0Policy:
        """A PI0 checkpoint (`config.json` + `model*.safetensors`, e.g. lerobot/pi0_base downloaded) or one of our
        run directories (full model, or `lora_adapter/` on top of `base`, default the adapter's recorded base).

        Args:
            spec: default the directory's `policy_config.json`, else LIBERO's.
            trainable_lora: load the adapter with trainable LoRA weights (to continue training).
            config_overrides: `PI0Config` fields to replace, e.g. `chunk_size=10`, `attn_implementation="eager"`.
        """
        path = Path(path)
        if not path.is_dir():
            raise MissingInputError(
                f"{path} is not a directory; pass a local PI0 checkpoint or run directory (nothing is downloaded: "
                "fetch hub checkpoints first, e.g. `hf download lerobot/pi0_base --local-dir <dir>`)"
            )
        spec = spec or _read_spec(path)
        if spec.chunk_size is not None:
            config_overrides.setdefault("chunk_size", spec.chunk_size)
        if (path / MODEL_CONFIG_NAME).is_file():
            model = load_pi0_model(path, dtype, config_overrides)
        elif (path / LORA_DIR).is_dir():
            model = load_with_lora_adapter(
                path, base, lambda directory: load_pi0_model(directory, dtype, config_overrides), trainable_lora, "PI0"
            )
        else:
            raise MissingInputError(
                f"{path} holds no PI0 model: neither {MODEL_CONFIG_NAME} + model*.safetensors nor {LORA_DIR}/ "
                f"(found: {sorted(p.name for p in path.iterdir())})"
            )
        statistics = load_dataset_statistics(path) if (path / STATISTICS_NAME).is_file() else {}
        return cls(model, spec, statistics)


def load_pi0_model(
    path: Path, dtype: torch.dtype | None = None, config_overrides: Mapping[str, Any] | None = None
) -> PI0ForConditionalGeneration:
    """A PI0 checkpoint, strictly (see `load_pretrained_strict`)."""
    return load_pretrained_strict(PI0ForConditionalGeneration, path, dtype, "pi0", **dict(config_overrides or {}))


def _read_spec(path: Path) -> PI0PolicySpec:
    spec_file = path / POLICY_CONFIG_NAME
    return spec_from_dict(PI0PolicySpec, json.loads(spec_file.read_text())) if spec_file.is_file() else PI0PolicySpec()
