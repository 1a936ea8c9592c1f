"""`OpenVLAPolicy`: the OpenVLA-OFT policy = VLA + action head (+ proprio projector), with its training loss and
`predict_action`, and the run-directory layout it is saved in.

Action heads (`PolicySpec.action_head`), as OFT:
    "l1"         L1 regression on the final-norm states one position before each action token (OFT default)
    "diffusion"  DDIM noise prediction; noisy actions replace the action-token embeddings, the timestep is one
                 extra token after the proprio token
    "discrete"   OpenVLA's 256-bin action tokens, cross-entropy training, argmax decoding in one parallel pass

Run directory (OFT's layout; `checkpoint.py` and `oft_format.py` say which file names each loader finds):
    lora_adapter/                               peft adapter (when the VLA is LoRA-wrapped)
    config.json + model*.safetensors            the full VLA (when not LoRA-wrapped, or OFT's merged model)
    <component>--<tag>.safetensors              action_head, proprio_projector, noisy_action_projector (ours)
    <component>--<tag>_checkpoint.pt            the same heads for OFT's evaluation, written beside a full VLA only
                                                (OFT cannot evaluate a LoRA-only directory); OFT's runs hold these
    <component>--<tag>_checkpoint.safetensors   the heads in our runs from before the OFT export
    (all three forms are read)
    dataset_statistics.json                     action/proprio statistics, keyed by dataset
    policy_config.json                          the PolicySpec (ours; OFT dirs fall back to LIBERO defaults)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from rocket_openvla.backbones.action_heads import (
    DiffusionActionHead,
    L1RegressionActionHead,
    NoisyActionProjector,
    ProprioProjector,
)
from rocket_openvla.backbones.base import POLICY_CONFIG_NAME, PolicyOutput, eval_mode, save_policy_files
from rocket_openvla.backbones.lora import LORA_DIR, load_with_lora_adapter, unwrap
from rocket_openvla.backbones.openvla.checkpoint import (
    INDEX_NAME,
    SINGLE_WEIGHTS_NAME,
    check_state_dict,
    find_component_file,
    load_component_state_dict,
    save_component_state_dict,
)
from rocket_openvla.backbones.openvla.configuration_openvla import CONFIG_NAME, PolicySpec
from rocket_openvla.backbones.openvla.modeling_openvla import (
    CHANNELS_PER_IMAGE,
    OpenVLAModel,
    OpenVLAOutput,
    action_token_positions,
)
from rocket_openvla.backbones.openvla.prompting import IGNORE_INDEX, build_training_ids
from rocket_openvla.backbones.registry import spec_from_dict
from rocket_openvla.errors import MissingInputError
from rocket_openvla.normalization import (
    STATISTICS_NAME,
    DatasetStatistics,
    NormalizationType,
    load_dataset_statistics,
    parse_dataset_statistics,
    select_unnorm_key,
)

logger = logging.getLogger(__name__)

LLAMA2_ACTION_PREFIX_ID = 29871  # "▁" in Llama-2's tokenizer, between "Out:" and the first action token
COMPONENTS = ("action_head", "proprio_projector", "noisy_action_projector")
FLOAT32_COMPONENTS = ("proprio_projector", "noisy_action_projector")  # float32 whatever the VLA's dtype, as OFT


@dataclass
class PredictedActions:
    """`predict_action` output: `actions` and `normalized_actions` `[B, chunk, action_dim]` (float32),
    `actions_hidden_states` `[B, chunk * action_dim, D]` (the last VLA pass for diffusion)."""

    actions: torch.Tensor
    normalized_actions: torch.Tensor
    actions_hidden_states: torch.Tensor


class OpenVLAPolicy(nn.Module):
    """`vla` (OpenVLAModel, possibly peft-wrapped) + `action_head` + `proprio_projector` + `noisy_action_projector`.

    Batch keys (the OpenVLA collator's): `input_ids [B, T]`, `attention_mask [B, T]`, `labels [B, T]`,
    `pixel_values [B, 6V, 224, 224]`, `actions [B, chunk, action_dim]` (normalised), `proprio [B, proprio_dim]`.
    """

    def __init__(
        self,
        vla: nn.Module,
        spec: PolicySpec,
        statistics: Mapping[str, DatasetStatistics] | None = None,
        action_prefix_id: int = LLAMA2_ACTION_PREFIX_ID,
    ) -> None:
        super().__init__()
        self.vla = vla
        self.spec = spec
        self.statistics = dict(statistics or {})
        self.action_prefix_id = action_prefix_id
        width = self.base_vla.config.hidden_size
        self.proprio_projector = ProprioProjector(width, spec.proprio_dim) if spec.use_proprio else None
        self.noisy_action_projector = NoisyActionProjector(width) if spec.action_head == "diffusion" else None
        self.action_head = _build_action_head(spec, width)

    @property
    def base_vla(self) -> OpenVLAModel:
        """The OpenVLAModel under any peft wrapper."""
        return unwrap(self.vla)

    @property
    def has_lora(self) -> bool:
        """True when the VLA is wrapped by peft (LoRA applied or loaded)."""
        return isinstance(self.vla, PeftModel)

    # --- training ------------------------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, torch.Tensor]) -> PolicyOutput:
        """The action loss of one batch (L1, diffusion noise MSE or token cross-entropy) and detached metrics."""
        self._check_batch(batch)
        actions = batch["actions"]
        if self.spec.action_head == "diffusion":
            return self._diffusion_loss(batch, actions)
        output, hidden = self._run(batch, batch["labels"], compute_logits=self.spec.action_head == "discrete")
        if self.spec.action_head == "discrete":
            return self._token_loss(output, hidden, batch["labels"])
        predicted = self.action_head(hidden).float()
        loss = F.l1_loss(predicted, actions.float())
        return PolicyOutput(loss, self._l1_metrics(loss, predicted, actions.float()))

    def _run(
        self,
        batch: Mapping[str, torch.Tensor],
        labels: torch.Tensor,
        timestep_embeddings: torch.Tensor | None = None,
        action_token_embeddings: torch.Tensor | None = None,
        compute_logits: bool = False,
    ) -> tuple[OpenVLAOutput, torch.Tensor]:
        """One VLA pass; returns its output and the action hidden states `[B, chunk * action_dim, D]`."""
        extra = [self._proprio_token(batch)] if self.proprio_projector is not None else []
        if timestep_embeddings is not None:
            extra.append(timestep_embeddings)
        output = self.vla(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            labels=labels,
            extra_tokens=torch.cat(extra, dim=1) if extra else None,
            action_token_embeddings=action_token_embeddings,
            compute_logits=compute_logits,
        )
        hidden = self.base_vla.action_hidden_states(output, labels, self.spec.num_action_tokens)
        return output, hidden

    def _proprio_token(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        proprio = batch["proprio"].reshape(batch["input_ids"].shape[0], -1)  # OFT squeezes B = 1 batches to [P]
        return self.proprio_projector(_as_input_of(self.proprio_projector, proprio)).unsqueeze(1)

    def _noisy_action_embeddings(self, noisy_actions: torch.Tensor) -> torch.Tensor:
        """`[B, chunk, action_dim]` -> one LLM embedding per action token `[B, chunk * action_dim, D]`."""
        values = noisy_actions.reshape(noisy_actions.shape[0], -1, 1)
        return self.noisy_action_projector(_as_input_of(self.noisy_action_projector, values))

    @staticmethod
    def _l1_metrics(loss: torch.Tensor, predicted: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        metrics = {"action_l1": loss.detach(), "current_action_l1": F.l1_loss(predicted[:, 0], actions[:, 0]).detach()}
        if actions.shape[1] > 1:
            metrics["next_actions_l1"] = F.l1_loss(predicted[:, 1:], actions[:, 1:]).detach()
        return metrics

    def _diffusion_loss(self, batch: Mapping[str, torch.Tensor], actions: torch.Tensor) -> PolicyOutput:
        noised = self.action_head.sample_noisy_actions(actions)
        embeddings = self._noisy_action_embeddings(noised.noisy_actions)
        _, hidden = self._run(batch, batch["labels"], noised.timestep_embeddings, embeddings)
        loss = F.mse_loss(self.action_head(hidden).float(), noised.noise.float())
        return PolicyOutput(loss, {"noise_mse": loss.detach()})

    def _token_loss(self, output: OpenVLAOutput, hidden: torch.Tensor, labels: torch.Tensor) -> PolicyOutput:
        vla = self.base_vla
        predicted = vla.get_output_embeddings()(hidden).argmax(-1)
        target = labels.gather(1, action_token_positions(labels, vla.action_token_begin, self.spec.num_action_tokens))
        decode = vla.action_tokenizer.decode
        metrics = {
            "action_ce": output.loss.detach(),
            "action_accuracy": (predicted == target).float().mean().detach(),
            "action_l1": F.l1_loss(decode(predicted), decode(target)).detach(),
        }
        return PolicyOutput(output.loss, metrics)

    def _check_batch(self, batch: Mapping[str, torch.Tensor]) -> None:
        required = ["input_ids", "attention_mask", "labels", "pixel_values", "actions"]
        required += ["proprio"] if self.spec.use_proprio else []
        missing = [key for key in required if key not in batch]
        if missing:
            raise ValueError(f"batch lacks {missing}; the OpenVLA collator provides {required}")
        self.check_pixel_values(batch["pixel_values"])
        expected = (self.spec.chunk, self.spec.action_dim)
        if tuple(batch["actions"].shape[1:]) != expected:
            raise ValueError(
                f"actions have shape {tuple(batch['actions'].shape)}; this policy predicts [B, chunk, action_dim] = "
                f"[B, {expected[0]}, {expected[1]}] (PolicySpec.chunk / action_dim)"
            )
        self._check_proprio(batch.get("proprio"), batch["input_ids"].shape[0])

    def _check_proprio(self, proprio: torch.Tensor | None, batch_size: int) -> None:
        if not self.spec.use_proprio:
            return
        if proprio is None:
            raise ValueError("proprio is missing; this policy was built with use_proprio=True")
        if proprio.numel() != batch_size * self.spec.proprio_dim:
            raise ValueError(
                f"proprio has shape {tuple(proprio.shape)}; expected [{batch_size}, {self.spec.proprio_dim}] "
                "(PolicySpec.proprio_dim)"
            )

    def check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        """Raise ValueError unless `pixel_values` is `[B, 6 * num_images, H, W]`."""
        channels = pixel_values.shape[1] if pixel_values.dim() == 4 else None
        expected = CHANNELS_PER_IMAGE * self.spec.num_images
        if channels == expected:
            return
        if channels is not None and channels % CHANNELS_PER_IMAGE == 0:
            raise ValueError(
                f"pixel_values carry {channels // CHANNELS_PER_IMAGE} camera images ({channels} channels); this policy "
                f"takes num_images={self.spec.num_images} ({expected} channels). Feed the cameras it was built for or "
                "set num_images"
            )
        raise ValueError(
            f"pixel_values has shape {tuple(pixel_values.shape)}; expected [B, {expected}, 224, 224]: 6 channels per "
            "camera image ([DINOv2-normalised RGB | SigLIP-normalised RGB], as the OpenVLA processor makes them)"
        )

    # --- inference -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_action(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        proprio: torch.Tensor | None = None,
        unnorm_key: str | None = None,
        num_diffusion_steps: int | None = None,
        generator: torch.Generator | None = None,
        normalized_proprio: torch.Tensor | None = None,
    ) -> PredictedActions:
        """Un-normalised action chunks for a batch of prompts, decoded in one parallel pass (diffusion: one per step).

        Runs in eval mode (the policy's previous mode is restored afterwards) and without gradients.

        Args:
            input_ids: `[B, L]` BOS + prompt ending at "Out:" (the "▁" before the actions is appended if missing),
                right-padded; `attention_mask [B, L]` marks the real tokens.
            pixel_values: `[B, 6V, 224, 224]`.
            proprio: `[B, proprio_dim]` raw robot state, as the dataset records it; normalised here with the
                `unnorm_key` dataset's proprio statistics, as the policy saw it in training.
            unnorm_key: dataset whose statistics normalise the state and un-normalise the actions (may be omitted
                with one dataset).
            generator: seeds the diffusion starting noise.
            normalized_proprio: instead of `proprio`, a state already normalised by the caller (OFT's convention).
        """
        self.check_pixel_values(pixel_values)
        key = select_unnorm_key(self.statistics, unnorm_key)  # fail before the forward pass
        if proprio is not None and normalized_proprio is not None:
            raise ValueError("pass the robot state once: either proprio (raw) or normalized_proprio")
        if proprio is not None and self.spec.use_proprio:
            normalized_proprio = self.statistics[key].normalize_proprio(
                proprio, NormalizationType(self.spec.normalization), key
            )
        self._check_proprio(normalized_proprio, input_ids.shape[0])
        ids, mask, labels = self._inference_sequences(input_ids, attention_mask)
        batch = {"input_ids": ids, "attention_mask": mask, "pixel_values": pixel_values, "proprio": normalized_proprio}
        with eval_mode(self):
            if self.spec.action_head == "diffusion":
                normalized, hidden = self._sample_diffusion(batch, labels, num_diffusion_steps, generator)
            else:
                _, hidden = self._run(batch, labels)
                if self.spec.action_head == "l1":
                    normalized = self.action_head(hidden)
                else:
                    token_ids = self.base_vla.get_output_embeddings()(hidden).argmax(-1)
                    normalized = self.base_vla.action_tokenizer.decode(token_ids)
        normalized = normalized.float().reshape(-1, self.spec.chunk, self.spec.action_dim)
        return PredictedActions(self.unnormalize_actions(normalized, key), normalized, hidden)

    def _inference_sequences(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each prompt + "▁" + chunk * action_dim placeholder action tokens + `</s>`, right-padded (as in training)."""
        vla = self.base_vla
        placeholder = [vla.action_token_begin + 1] * self.spec.num_action_tokens
        eos = vla.config.text_config["eos_token_id"]
        rows = [
            build_training_ids(ids[: int(n)].tolist(), placeholder, self.action_prefix_id, eos)
            for ids, n in zip(input_ids, attention_mask.sum(dim=1))
        ]
        ids = pad_sequence([torch.tensor(r[0]) for r in rows], batch_first=True, padding_value=vla.config.pad_token_id)
        labels = pad_sequence([torch.tensor(r[1]) for r in rows], batch_first=True, padding_value=IGNORE_INDEX)
        mask = pad_sequence([torch.ones(len(r[0]), dtype=torch.bool) for r in rows], batch_first=True)
        device = input_ids.device
        return ids.to(device), mask.to(device), labels.to(device)

    def _sample_diffusion(
        self,
        batch: Mapping[str, torch.Tensor],
        labels: torch.Tensor,
        num_steps: int | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = batch["pixel_values"]
        shape = (pixels.shape[0], self.spec.chunk, self.spec.action_dim)
        noise = torch.randn(shape, generator=generator, device=pixels.device, dtype=pixels.dtype)
        last_hidden: list[torch.Tensor] = []

        def hidden_states(noisy_actions: torch.Tensor, timestep_embeddings: torch.Tensor) -> torch.Tensor:
            embeddings = self._noisy_action_embeddings(noisy_actions)
            _, hidden = self._run(batch, labels, timestep_embeddings, embeddings)
            last_hidden[:] = [hidden]
            return hidden

        return self.action_head.sample(hidden_states, noise, num_steps), last_hidden[0]

    def unnormalize_actions(self, normalized: torch.Tensor, unnorm_key: str | None = None) -> torch.Tensor:
        """`[..., action_dim]` normalised -> raw, with the statistics of `unnorm_key` (OFT's bounds formula)."""
        key = select_unnorm_key(self.statistics, unnorm_key)
        return self.statistics[key].action.unnormalize(normalized, NormalizationType(self.spec.normalization))

    def set_dtype(self, dtype: torch.dtype) -> OpenVLAPolicy:
        """Cast the weights as OpenVLA-OFT trains them: the VLA and the action head in `dtype` (e.g. bfloat16), the
        proprio and noisy-action projectors in float32 (OFT casts only the action head; in bfloat16 the projectors'
        small updates round away once the learning rate has decayed). Their outputs join the VLA's embeddings in
        the VLA's dtype."""
        self.vla.to(dtype)
        if self.action_head is not None:
            self.action_head.to(dtype)
        for name in FLOAT32_COMPONENTS:
            module = getattr(self, name)
            if module is not None:
                module.to(torch.float32)
        return self

    # --- checkpoints ---------------------------------------------------------------------------------------------
    def components(self) -> dict[str, nn.Module]:
        """The modules saved beside the VLA, by OFT's file names."""
        modules = {name: getattr(self, name) for name in COMPONENTS}
        return {name: module for name, module in modules.items() if module is not None}

    def save_pretrained(self, path: str | Path, tag: str = "latest") -> None:
        """Write the run-directory layout (module docstring); a LoRA-wrapped VLA is saved as its adapter only, and
        OFT's `.pt` heads are written when the full VLA is (merged policies, full finetuning)."""
        path = save_policy_files(path, self.vla, self.spec, self.statistics)
        for name, module in self.components().items():
            save_component_state_dict(module.state_dict(), path, name, tag, oft_copy=not self.has_lora)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        base: str | Path | None = None,
        spec: PolicySpec | None = None,
        trainable_lora: bool = False,
        dtype: torch.dtype | None = None,
        device: str | torch.device = "cpu",
        action_prefix_id: int = LLAMA2_ACTION_PREFIX_ID,
        **vla_overrides: Any,
    ) -> OpenVLAPolicy:
        """Load a policy from an OFT run directory, one of ours, or a bare VLA checkpoint (`openvla/openvla-7b`).

        A run directory (it has `lora_adapter/` or `<component>--*` files) must hold every component
        `spec` needs, or loading fails naming the missing files; a bare checkpoint gets freshly initialised heads
        (seed the global RNG first). The VLA comes from the directory's own weights (OFT's merged model) or, when
        it holds only `lora_adapter/`, from `base` (default: the adapter's `base_model_name_or_path`) + the adapter.

        Args:
            spec: the policy's settings; default: the directory's `policy_config.json`, else OFT's LIBERO recipe.
            trainable_lora: load the adapter with trainable LoRA weights (to continue training).
            vla_overrides: `OpenVLAConfig` fields to replace, e.g. `attn_implementation="eager"`.
        """
        path = Path(path)
        if not path.is_dir():
            raise MissingInputError(
                f"{path} is not a directory; pass a local OpenVLA checkpoint or OFT run directory (nothing is "
                "downloaded: fetch hub checkpoints first, e.g. `hf download openvla/openvla-7b --local-dir <dir>`)"
            )
        spec = spec or _read_spec(path)
        vla = _load_vla(path, base, trainable_lora, dtype, device, vla_overrides)
        policy = cls(vla, spec, _read_statistics(path, vla), action_prefix_id)
        if _is_run_dir(path):
            _load_components(policy, path)
        else:
            logger.info("%s holds no action head: %s heads are freshly initialised", path, spec.action_head)
        if dtype is not None:
            policy.set_dtype(dtype)
        return policy.to(device)


def _as_input_of(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`x` in the dtype of `module`'s weights (float32 data into a bfloat16 policy)."""
    return x.to(next(module.parameters()).dtype)


def _build_action_head(spec: PolicySpec, width: int) -> nn.Module | None:
    if spec.action_head == "l1":
        return L1RegressionActionHead(width, width, spec.action_dim, spec.chunk)
    if spec.action_head == "diffusion":
        return DiffusionActionHead(width, width, spec.action_dim, spec.chunk, spec.num_diffusion_steps_train)
    return None


def _has_model_weights(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and ((path / SINGLE_WEIGHTS_NAME).is_file() or (path / INDEX_NAME).is_file())


def _is_run_dir(path: Path) -> bool:
    return (path / LORA_DIR).is_dir() or any(next(path.glob(f"{name}--*"), None) for name in COMPONENTS)


def _read_spec(path: Path) -> PolicySpec:
    spec_file = path / POLICY_CONFIG_NAME
    if spec_file.is_file():
        return spec_from_dict(PolicySpec, json.loads(spec_file.read_text()))
    return PolicySpec()


def _read_statistics(path: Path, vla: nn.Module) -> dict[str, DatasetStatistics]:
    if (path / STATISTICS_NAME).is_file():
        return load_dataset_statistics(path / STATISTICS_NAME)
    return parse_dataset_statistics(unwrap(vla).config.norm_stats or {})


def _load_vla(
    path: Path,
    base: str | Path | None,
    trainable_lora: bool,
    dtype: torch.dtype | None,
    device: str | torch.device,
    overrides: dict[str, Any],
) -> nn.Module:
    if _has_model_weights(path):
        if (path / LORA_DIR).is_dir():
            logger.info("%s holds merged VLA weights; its %s/ is not applied again", path, LORA_DIR)
        return OpenVLAModel.from_pretrained(path, dtype=dtype, device=device, **overrides)
    if not (path / LORA_DIR).is_dir():
        raise MissingInputError(
            f"{path} holds no VLA: neither {CONFIG_NAME} + {SINGLE_WEIGHTS_NAME} / {INDEX_NAME} nor {LORA_DIR}/"
        )
    return load_with_lora_adapter(
        path, base, lambda directory: OpenVLAModel.from_pretrained(directory, dtype=dtype, device=device, **overrides),
        trainable_lora, "VLA",
    )


def _load_components(policy: OpenVLAPolicy, path: Path) -> None:
    modules = policy.components()
    files = {name: find_component_file(path, name) for name in modules}
    missing = [f"{name}--*.safetensors or {name}--*_checkpoint.pt" for name, file in files.items() if file is None]
    if missing:
        raise MissingInputError(
            f"run directory {path} lacks {missing}, needed by action_head={policy.spec.action_head!r}, "
            f"use_proprio={policy.spec.use_proprio}; pass the matching PolicySpec or a complete checkpoint"
        )
    for name, module in modules.items():
        state = load_component_state_dict(files[name])
        check_state_dict(module.state_dict(), state, source=str(files[name]))
        module.load_state_dict(state)
