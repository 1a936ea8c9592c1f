"""`PI0Adapter`: transformers' PI0 behind the `BackboneAdapter` interface, and `build_pi0_adapter`, which builds it
from the registered `PI0BackboneConfig` (`--backbone.type pi0`).

What ROCKET aligns: the PaliGemma language model's residual stream on the prefix, at the image tokens of the present
cameras. PI0 runs the VLM once on the prefix (image tokens of the present cameras first, then BOS, the prompt and
"\\n") and the action expert attends to its key/value cache, so hooks on the VLM's decoder layers record exactly its
`output_hidden_states`. Student layer k = that language model's `hidden_states[k]` (18 layers in the real model).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from rocket_openvla.backbones.base import BackboneAdapter, ImageTokens, image_token_positions, pad_prompts
from rocket_openvla.backbones.char_tokenizer import build_char_tokenizer
from rocket_openvla.backbones.pi0.configuration_pi0 import PI0PolicySpec
from rocket_openvla.backbones.pi0.policy import PI0Policy
from rocket_openvla.backbones.pi0.processing_pi0 import PI0InputProcessor, PI0Layout
from rocket_openvla.backbones.pi0.tiny import SIZE_PRESETS
from rocket_openvla.capture import CapturePoints
from rocket_openvla.errors import MissingInputError

if TYPE_CHECKING:
    from rocket_openvla.backbones.pi0.backbone_config import PI0BackboneConfig

logger = logging.getLogger(__name__)

TEACHER_INPUT_FORMAT = "pm1"  # pixel_values [B, slots, 3, S, S] in [-1, 1]; absent slots are zeros
# Trained fully (not through LoRA): the state / noisy-action / timestep embedding and the velocity head.
ACTION_PROJECTIONS = ("embed_action_time", "action_out_proj")


def lora_target_modules(model: nn.Module) -> list[str]:
    """Every `nn.Linear` of the VLM (vision tower, projector, language model) and of the action expert."""
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.startswith(("model.vlm.", "model.dit."))]


class PI0Adapter(BackboneAdapter):
    """Adapter of a `PI0Policy`; see `BackboneAdapter` for the contract."""

    teacher_input_format = TEACHER_INPUT_FORMAT
    lora_attribute = "model"
    lora_modules_to_save = ACTION_PROJECTIONS

    _policy: PI0Policy
    _processor: PI0InputProcessor

    @property
    def language_model(self) -> nn.Module:
        """The VLM's Gemma decoder (under the LoRA wrapper, if any)."""
        return self._policy.base_model.model.vlm.language_model

    @property
    def hidden_size(self) -> int:
        return self._policy.base_model.config.vlm_config.text_config.hidden_size

    @property
    def num_hidden_layers(self) -> int:
        return self._policy.base_model.config.vlm_config.text_config.num_hidden_layers

    @property
    def num_images(self) -> int:
        return self._policy.spec.camera_slots

    @property
    def camera_grids(self) -> tuple[tuple[int, int], ...]:
        side = int(self._processor.layout.tokens_per_image**0.5)
        return ((side, side),) * self.num_images

    @property
    def action_chunk(self) -> int:
        return self._processor.layout.chunk_size

    @property
    def action_dim(self) -> int:
        return self._policy.spec.action_dim

    @property
    def state_dim(self) -> int:
        return self._policy.spec.proprio_dim

    def ddp_find_unused_parameters(self, student_layers: Sequence[int]) -> bool:
        """The expert reads only the VLM's key/value cache, so the last VLM layer's query, output projection and MLP
        get a gradient only when the final hidden state (`hidden_states[n]`) is aligned."""
        return self.num_hidden_layers not in student_layers

    def image_tokens(self, batch: Mapping[str, Any]) -> ImageTokens:
        """Slot s's tokens are the r-th run of image tokens when s is the r-th present slot; absent slots are masked."""
        layout = self._processor.layout
        return image_token_positions(batch["input_ids"], layout.image_token_id,
                                     [layout.tokens_per_image] * self.num_images, batch["pixel_attention_mask"])

    def lora_target_modules(self, model: nn.Module) -> list[str]:
        return lora_target_modules(model)

    def capture_points(self) -> CapturePoints:
        return CapturePoints.from_decoder(self.language_model)

    def vision_gradient_checkpointing_enable(self) -> None:
        """Recompute the vision tower in backward. (PI0's own `gradient_checkpointing_enable()` turns off the VLM's
        key/value cache, which the action expert needs, and breaks training.)"""
        self._policy.base_model.model.vlm.vision_tower.gradient_checkpointing_enable({"use_reentrant": False})

    def predict_actions(
        self,
        images: torch.Tensor,
        instructions: Sequence[str],
        proprio: torch.Tensor | None = None,
        unnorm_key: str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """PI0's flow-matching sampler; a sample's cameras fill the first slots, the others are absent."""
        processor, device = self._processor, self.device
        pixel_values, present = zip(*(processor.camera_slots(views) for views in images))
        input_ids, attention_mask = pad_prompts(
            [processor.prompt_input_ids(text, len(views)) for text, views in zip(instructions, images)],
            processor.tokenizer.pad_token_id,
        )
        return self._policy.predict_action(
            input_ids.to(device), attention_mask.long().to(device), torch.stack(pixel_values).to(device),
            torch.stack(present).to(device), proprio=None if proprio is None else proprio.to(device),
            unnorm_key=unnorm_key, generator=generator,
        ).actions

    def save_pretrained(self, path: str | Path, tag: str = "latest") -> None:
        """The policy's run directory (see `policy.py`) plus the tokenizer files."""
        self._policy.save_pretrained(path)
        self._processor.save_pretrained(path)


def build_pi0_adapter(config: PI0BackboneConfig) -> PI0Adapter:
    """The policy and processor `config` describes (a random model, or loaded from a checkpoint / run directory)."""
    dtype = None if config.dtype is None else getattr(torch, config.dtype)
    overrides = {"attn_implementation": config.attn_implementation}
    torch.manual_seed(config.seed)
    if config.pretrained is None:
        spec = config.policy or PI0PolicySpec()
        if spec.chunk_size is not None:
            overrides["chunk_size"] = spec.chunk_size
        policy = PI0Policy(_random_model(config, overrides), spec)
        tokenizer = build_char_tokenizer()
    else:
        policy = PI0Policy.from_pretrained(
            config.pretrained, base=config.base, spec=config.policy, trainable_lora=True, dtype=dtype, **overrides
        )
        tokenizer = _load_tokenizer(config)
    if dtype is not None:
        policy.set_dtype(dtype)
    model_config = policy.base_model.config
    vision = model_config.vlm_config.vision_config
    layout = PI0Layout(
        image_token_id=model_config.vlm_config.image_token_id,
        image_size=vision.image_size,
        tokens_per_image=(vision.image_size // vision.patch_size) ** 2,
        max_state_dim=model_config.max_state_dim,
        max_action_dim=model_config.max_action_dim,
        chunk_size=model_config.chunk_size,
    )
    adapter = PI0Adapter(policy, PI0InputProcessor(tokenizer, policy.spec, layout))
    if config.vision_gradient_checkpointing:
        adapter.vision_gradient_checkpointing_enable()
    return adapter


def _random_model(config: PI0BackboneConfig, overrides: dict[str, Any]) -> nn.Module:
    from transformers import PI0ForConditionalGeneration

    model_config = SIZE_PRESETS[config.size](**overrides)
    model_config._attn_implementation = config.attn_implementation
    return PI0ForConditionalGeneration(model_config)


def _load_tokenizer(config: PI0BackboneConfig) -> PreTrainedTokenizerBase:
    candidates = [Path(d) for d in (config.tokenizer, config.pretrained, config.base) if d is not None]
    for directory in candidates:
        if any(directory.glob("tokenizer*")):
            return AutoTokenizer.from_pretrained(directory)
    raise MissingInputError(
        f"no tokenizer files in {[str(d) for d in candidates]}; PI0 uses PaliGemma's tokenizer: pass "
        "--backbone.tokenizer <local copy of google/paligemma-3b-pt-224> (PI0 checkpoints do not ship one)"
    )
