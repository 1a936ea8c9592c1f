"""`LeRobotAdapter`: a lerobot pi0 / pi0.5 / SmolVLA policy behind the `BackboneAdapter` interface, and
`build_lerobot_adapter`, which builds it from the registered `LeRobotBackboneConfig` (`--backbone.type lerobot`).

What ROCKET aligns: the VLM language model's residual stream on the prefix, at the image tokens of the present
cameras (see `layout.py`: pre-hooks on `layers[k].input_layernorm` and the final norm, because lerobot's
mixture-of-transformers forward never calls the decoder blocks). Student layer k = that language model's
`hidden_states[k]` (18 blocks for pi0 / pi0.5's PaliGemma; SmolVLA keeps `num_vlm_layers` of SmolVLM2's). The teacher
gets the camera slots as lerobot's own preprocessing hands them to the vision tower, mapped back to [0, 1].

LoRA ("all-linear"): every linear layer of the VLM's language model, of the action expert, and of the vision tower and
its projector unless lerobot's `freeze_vision_encoder` is set; not the unused LM heads. lerobot's own PEFT defaults
adapt only the expert, which would leave ROCKET nothing to train but its projector. The small projections around the
expert (state, action, time) train fully.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rocket_openvla.backbones.base import BackboneAdapter, ImageTokens, eval_mode, tensors_to
from rocket_openvla.backbones.lora import unwrap
from rocket_openvla.capture import CapturePoints
from rocket_openvla.integrations.lerobot import layout
from rocket_openvla.integrations.lerobot.configuration_lerobot import LeRobotPolicySpec
from rocket_openvla.integrations.lerobot.loading import build_lerobot_policy, load_tokenizer, write_spec
from rocket_openvla.integrations.lerobot.policy import LeRobotPolicy
from rocket_openvla.integrations.lerobot.processing_lerobot import LeRobotInputProcessor, LeRobotLayout
from rocket_openvla.normalization import (
    STATISTICS_NAME,
    DatasetStatistics,
    NormalizationType,
    load_dataset_statistics,
    select_unnorm_key,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from rocket_openvla.integrations.lerobot.backbone_config import LeRobotBackboneConfig

NORMALIZATION = NormalizationType.BOUNDS_Q99  # how our data pipeline normalises actions and states
EMPTY_CAMERA_PREFIX = "observation.images.empty_camera_"  # lerobot's names of the `empty_cameras` features
TEACHER_INPUT_FORMAT = "unit"  # teacher_images [B, slots, 3, S, S] in [0, 1]; absent slots black
_PI_PREFIX, _SMOLVLA_PREFIX = "model.paligemma_with_expert.", "model.vlm_with_expert."
LORA_SCOPES = {  # policy type -> (language model, action expert, vision tower + projector) module prefixes
    "pi0": ((f"{_PI_PREFIX}paligemma.model.language_model.layers.",), (f"{_PI_PREFIX}gemma_expert.model.layers.",),
            (f"{_PI_PREFIX}paligemma.model.vision_tower.", f"{_PI_PREFIX}paligemma.model.multi_modal_projector.")),
    "smolvla": ((f"{_SMOLVLA_PREFIX}vlm.model.text_model.layers.",), (f"{_SMOLVLA_PREFIX}lm_expert.layers.",),
                (f"{_SMOLVLA_PREFIX}vlm.model.vision_model.", f"{_SMOLVLA_PREFIX}vlm.model.connector.")),
}
LORA_SCOPES["pi05"] = LORA_SCOPES["pi0"]


def lora_target_modules(policy: nn.Module) -> list[str]:
    """"all-linear" for a lerobot policy (module docstring): names relative to the policy."""
    language, expert, vision = LORA_SCOPES[layout.policy_type(policy)]
    scopes = language + expert + (() if policy.config.freeze_vision_encoder else vision)
    return [name for name, module in policy.named_modules()
            if isinstance(module, nn.Linear) and name.startswith(scopes)]


def fully_trained_modules(policy: nn.Module) -> tuple[str, ...]:
    """The linear projections around the expert (state, noisy action, time, velocity head), trained fully."""
    return tuple(f"model.{name}" for name, child in policy.model.named_children() if isinstance(child, nn.Linear))


class LeRobotAdapter(BackboneAdapter):
    """Adapter of a `LeRobotPolicy`; see `BackboneAdapter` for the contract."""

    teacher_input_format = TEACHER_INPUT_FORMAT
    lora_attribute = "lerobot"

    _policy: LeRobotPolicy
    _processor: LeRobotInputProcessor

    def __init__(self, policy: LeRobotPolicy, processor: LeRobotInputProcessor) -> None:
        super().__init__(policy, processor)
        self.lora_modules_to_save = fully_trained_modules(policy.base_policy)
        self._num_slots = len(layout.camera_slots(policy.base_policy.config, processor.layout.cameras))

    @property
    def lerobot_policy(self) -> nn.Module:
        """The lerobot policy under any peft wrapper."""
        return self._policy.base_policy

    @property
    def hidden_size(self) -> int:
        return layout.language_model(self.lerobot_policy).config.hidden_size

    @property
    def num_hidden_layers(self) -> int:
        return len(layout.language_model(self.lerobot_policy).layers)

    @property
    def num_images(self) -> int:
        return self._num_slots

    @property
    def camera_grids(self) -> tuple[tuple[int, int], ...]:
        return (layout.camera_grid(self.lerobot_policy),) * self._num_slots

    @property
    def action_chunk(self) -> int:
        return self.lerobot_policy.config.chunk_size

    @property
    def action_dim(self) -> int:
        return self._processor.layout.action_dim

    @property
    def state_dim(self) -> int:
        return self._processor.layout.state_dim

    def image_tokens(self, batch: Mapping[str, Any]) -> ImageTokens:
        return ImageTokens(*layout.image_tokens(self.lerobot_policy, batch))

    def teacher_images(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """`[B, slots, 3, S, S]` in [0, 1]: lerobot's preprocessed camera slots (absent ones black)."""
        images, _ = layout.student_images(self.lerobot_policy, batch)
        return (images + 1) / 2

    def capture_points(self) -> CapturePoints:
        return layout.capture_points(self.lerobot_policy)

    def lora_target_modules(self, model: nn.Module) -> list[str]:
        return lora_target_modules(model)

    def ddp_find_unused_parameters(self, student_layers: Sequence[int]) -> bool:
        """The expert reads only the VLM's keys/values, so the last VLM block's query, output projection and MLP
        get a gradient only when the final hidden state (`hidden_states[n]`) is aligned."""
        return self.num_hidden_layers not in student_layers

    def predict_actions(
        self,
        images: torch.Tensor,
        instructions: Sequence[str],
        proprio: torch.Tensor | None = None,
        unnorm_key: str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """lerobot's own sampler (`predict_action_chunk`), from noise drawn with `generator`; the actions are
        un-normalised with the dataset's statistics (bounds_q99, as our data pipeline normalised them)."""
        statistics = self._policy.statistics
        key = select_unnorm_key(statistics, unnorm_key)
        if proprio is None:
            raise ValueError(f"lerobot policies take the robot state: pass proprio [B, {self.state_dim}]")
        states = statistics[key].normalize_proprio(proprio.float().cpu(), NORMALIZATION, key)
        processor, policy = self._processor, self.lerobot_policy
        batch = processor.collator()([processor.observation(views, text, state)
                                      for views, text, state in zip(images, instructions, states)])
        shape = (len(instructions), self.action_chunk, policy.config.max_action_dim)
        noise = torch.randn(shape, generator=generator, device=generator.device if generator is not None else "cpu")
        with eval_mode(self._policy), torch.no_grad():
            normalized = policy.predict_action_chunk(tensors_to(batch, self.device), noise=noise.to(self.device))
        return statistics[key].action.unnormalize(normalized.float().cpu(), NORMALIZATION)

    def save_base_model(self, path: str | Path) -> None:
        """lerobot's policy directory plus our spec, so that a tiny base reloads at its size."""
        super().save_base_model(path)
        write_spec(self._policy.spec, Path(path))

    def save_pretrained(self, path: str | Path, tag: str = "latest") -> None:
        """The policy's run directory (see `policy.py`) plus the tokenizer files."""
        self._policy.save_pretrained(path)
        self._processor.save_pretrained(path)


def wrap_lerobot_policy(
    lerobot_policy: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    cameras: Sequence[str] | None = None,
    spec: LeRobotPolicySpec | None = None,
    statistics: Mapping[str, DatasetStatistics] | None = None,
) -> LeRobotAdapter:
    """An adapter around a lerobot policy built elsewhere, e.g. `PI05Policy(config)` from a lerobot config.

    Args:
        lerobot_policy: a `PI0Policy`, `PI05Policy` or `SmolVLAPolicy` (possibly peft-wrapped).
        tokenizer: the tokenizer lerobot's processor would load (PaliGemma's; SmolVLM2's).
        cameras: the policy's image keys our data's cameras fill, in order; default: its image features but the
            empty cameras.
        spec: what its policy directories record (default: lerobot-sized).
    """
    base = unwrap(lerobot_policy)
    kind = layout.policy_type(base)
    if cameras is None:
        cameras = [key for key in base.config.image_features if not key.startswith(EMPTY_CAMERA_PREFIX)]
    policy = LeRobotPolicy(lerobot_policy, spec or LeRobotPolicySpec(kind, "full"), statistics)
    processor = LeRobotInputProcessor(tokenizer, LeRobotLayout.from_config(base.config, cameras),
                                      base.config.max_state_dim)
    return LeRobotAdapter(policy, processor)


def build_lerobot_adapter(config: LeRobotBackboneConfig) -> LeRobotAdapter:
    """The policy and processor `config` describes (a random model, or a lerobot / run policy directory)."""
    lerobot_policy, spec = build_lerobot_policy(config)
    directory = Path(config.pretrained) if config.pretrained is not None else None
    statistics = load_dataset_statistics(directory) if directory and (directory / STATISTICS_NAME).is_file() else {}
    return wrap_lerobot_policy(lerobot_policy, load_tokenizer(config), config.cameras, spec, statistics)
