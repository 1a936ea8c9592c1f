"""`VLMActionPolicy`: a transformers VLM with OpenVLA-OFT's parallel-decoding action head.

After the prompt come one proprio slot (OFT's proprio projector maps the state to a token) and chunk x action_dim
action-query slots holding learned query embeddings; the VLM runs once (bidirectionally by default, as OFT), and its
final hidden states at the query slots go through OFT's L1-regression MLP head to `[chunk, action_dim]`. The slot
embeddings are written by a hook on the VLM's input embedding, so each family's own forward (image merging, mRoPE,
masks) runs unchanged.

Run directory:
    lora_adapter/ | config.json + model*.safetensors   the VLM (adapter only, when LoRA-wrapped)
    policy_heads.safetensors                          action queries, proprio projector, action head
    policy_config.json, dataset_statistics.json, the processor files
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import load_file
from torch import nn

from rocket_openvla.align import gather_tokens
from rocket_openvla.backbones.action_heads import L1RegressionActionHead, ProprioProjector
from rocket_openvla.backbones.base import POLICY_CONFIG_NAME, PolicyOutput, eval_mode, save_policy_files
from rocket_openvla.backbones.hf_checkpoints import MODEL_CONFIG_NAME, load_pretrained_strict
from rocket_openvla.backbones.lora import LORA_DIR, load_with_lora_adapter, unwrap
from rocket_openvla.backbones.registry import spec_from_dict
from rocket_openvla.backbones.vlm.configuration_vlm import VLMPolicySpec
from rocket_openvla.backbones.vlm.family import VLMFamily
from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.files import save_safetensors
from rocket_openvla.normalization import (
    STATISTICS_NAME,
    DatasetStatistics,
    NormalizationType,
    load_dataset_statistics,
    select_unnorm_key,
)
from rocket_openvla.patches.bidirectional_attention import enable_bidirectional_attention
from rocket_openvla.state_dicts import state_dict_problems

HEADS_NAME = "policy_heads.safetensors"


@dataclass
class VLMActions:
    """`predict_action` output: `actions` (un-normalised) and `normalized_actions`, `[B, chunk, action_dim]` fp32."""

    actions: torch.Tensor
    normalized_actions: torch.Tensor


class VLMActionPolicy(nn.Module):
    """`vlm` (a transformers `*ForConditionalGeneration`, possibly peft-wrapped) + action queries + proprio projector
    + L1 head. Batch keys: the `VLMInputProcessor` collator's."""

    def __init__(
        self, vlm: nn.Module, family: VLMFamily, spec: VLMPolicySpec,
        statistics: Mapping[str, DatasetStatistics] | None = None,
    ) -> None:
        super().__init__()
        self.vlm, self.family, self.spec = vlm, family, spec
        self.statistics = dict(statistics or {})
        width = self.text_config.hidden_size
        self.action_queries = nn.Parameter(torch.randn(spec.num_action_tokens, width) / math.sqrt(width))
        self.proprio_projector = ProprioProjector(width, spec.proprio_dim) if spec.use_proprio else None
        self.action_head = L1RegressionActionHead(width, width, spec.action_dim, spec.chunk)
        self._slot_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None
        self.base_vlm.get_input_embeddings().register_forward_hook(self._write_slot_embeddings)
        if spec.bidirectional:
            enable_bidirectional_attention(self.language_model)

    @property
    def base_vlm(self) -> nn.Module:
        """The VLM under any peft wrapper."""
        return unwrap(self.vlm)

    @property
    def language_model(self) -> nn.Module:
        return self.family.language_model(self.base_vlm)

    @property
    def text_config(self) -> Any:
        return self.base_vlm.config.get_text_config()

    @property
    def has_lora(self) -> bool:
        return isinstance(self.vlm, PeftModel)

    # --- forward -------------------------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> PolicyOutput:
        """OFT's L1 loss of the predicted `[B, chunk, action_dim]` actions (and detached metrics)."""
        predicted = self._predict_normalized(batch, batch.get("state"))
        actions = batch["actions"].float()
        loss = F.l1_loss(predicted, actions)
        metrics = {"action_l1": loss.detach(), "current_action_l1": F.l1_loss(predicted[:, 0], actions[:, 0]).detach()}
        return PolicyOutput(loss, metrics)

    def _predict_normalized(self, batch: Mapping[str, Any], state: torch.Tensor | None) -> torch.Tensor:
        hidden = self.vlm_outputs(batch, state).last_hidden_state
        action_hidden = gather_tokens(hidden, batch["action_positions"])
        return self.action_head(action_hidden.to(self.action_head.model.fc1.weight.dtype)).float()

    def vlm_outputs(self, batch: Mapping[str, Any], state: torch.Tensor | None, **kwargs: Any) -> Any:
        """The VLM's base-model output on the batch with the proprio and action-query slots written (`kwargs`, e.g.
        `output_hidden_states=True`, go to the model)."""
        positions, values = batch["action_positions"], self.action_queries.expand(len(batch["input_ids"]), -1, -1)
        if self.proprio_projector is not None:
            if state is None:
                raise ValueError("the batch has no state; this policy was built with use_proprio=True")
            token = self.proprio_projector(state.to(self.proprio_projector.fc1.weight.dtype))
            positions = torch.cat([batch["proprio_positions"][:, None], positions], dim=1)
            values = torch.cat([token[:, None], values], dim=1)
        names = {"input_ids", "attention_mask", *self.family.token_inputs, *self.family.vision_input_names}
        self._slot_embeddings = (positions, values)
        try:
            return self.base_vlm.model(**{key: batch[key] for key in names}, use_cache=False, **kwargs)
        finally:
            self._slot_embeddings = None

    def _write_slot_embeddings(self, module: nn.Module, args: tuple, embeddings: torch.Tensor) -> torch.Tensor | None:
        if self._slot_embeddings is None:
            return None
        positions, values = self._slot_embeddings
        index = positions[..., None].expand(-1, -1, embeddings.shape[-1])
        return embeddings.scatter(1, index, values.to(embeddings.dtype))

    @torch.no_grad()
    def predict_action(
        self,
        batch: Mapping[str, Any],
        proprio: torch.Tensor | None = None,
        unnorm_key: str | None = None,
    ) -> VLMActions:
        """Un-normalised action chunks for a collated batch (`processor.collator()([processor(sample), ...])`, samples
        without actions), in one parallel pass, in eval mode (the previous mode is restored).

        Args:
            proprio: `[B, proprio_dim]` raw robot state, normalised here with the `unnorm_key` dataset's statistics;
                without it, the batch's `state` (already normalised) is used.
        """
        key = select_unnorm_key(self.statistics, unnorm_key)
        kind = NormalizationType(self.spec.normalization)
        state = batch.get("state")
        if proprio is not None:
            state = self.statistics[key].normalize_proprio(proprio, kind, key)
        with eval_mode(self):
            normalized = self._predict_normalized(batch, state)
        return VLMActions(self.statistics[key].action.unnormalize(normalized, kind), normalized)

    def set_dtype(self, dtype: torch.dtype) -> VLMActionPolicy:
        """The VLM and the action head in `dtype`; the action queries and the proprio projector in float32 (OFT)."""
        self.vlm.to(dtype)
        self.action_head.to(dtype)
        self.action_queries.data = self.action_queries.data.float()
        if self.proprio_projector is not None:
            self.proprio_projector.float()
        return self

    # --- checkpoints ---------------------------------------------------------------------------------------------
    def head_state_dict(self) -> dict[str, torch.Tensor]:
        return {name: tensor for name, tensor in self.state_dict().items() if not name.startswith("vlm.")}

    def save_pretrained(self, path: str | Path) -> None:
        path = save_policy_files(path, self.vlm, self.spec, self.statistics)
        save_safetensors({k: v.contiguous() for k, v in self.head_state_dict().items()}, path / HEADS_NAME)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        family: VLMFamily,
        base: str | Path | None = None,
        spec: VLMPolicySpec | None = None,
        trainable_lora: bool = False,
        dtype: torch.dtype | None = None,
        **model_overrides: Any,
    ) -> VLMActionPolicy:
        """A VLM checkpoint (fresh heads; seed the global RNG first) or one of our run directories (its heads)."""
        path = Path(path)
        if not path.is_dir():
            raise MissingInputError(f"{path} is not a directory; pass a local VLM checkpoint or run directory")
        spec_file = path / POLICY_CONFIG_NAME
        spec = spec or (spec_from_dict(VLMPolicySpec, json.loads(spec_file.read_text())) if spec_file.is_file()
                        else VLMPolicySpec())

        def load(directory: Path) -> nn.Module:
            return load_pretrained_strict(family.model_class(), directory, dtype, family.model_type, **model_overrides)

        if (path / MODEL_CONFIG_NAME).is_file():
            vlm = load(path)
        elif (path / LORA_DIR).is_dir():
            vlm = load_with_lora_adapter(path, base, load, trainable_lora, "VLM")
        else:
            raise MissingInputError(f"{path} holds no VLM: neither {MODEL_CONFIG_NAME} + model*.safetensors nor "
                                    f"{LORA_DIR}/")
        statistics = load_dataset_statistics(path) if (path / STATISTICS_NAME).is_file() else {}
        policy = cls(vlm, family, spec, statistics)
        if (path / HEADS_NAME).is_file():
            heads = load_file(str(path / HEADS_NAME))
            problems = state_dict_problems(policy.head_state_dict(), heads)
            if problems:
                raise ConfigError(f"{path / HEADS_NAME} does not fit backbone.policy: {'; '.join(problems)}")
            policy.load_state_dict(heads, strict=False)
        if dtype is not None:
            policy.set_dtype(dtype)
        return policy
