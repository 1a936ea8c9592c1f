"""`OpenVLAAdapter`: the native OpenVLA / OpenVLA-OFT policy behind the `BackboneAdapter` interface, and
`build_openvla_adapter`, which builds it from the registered `OpenVLABackboneConfig` (`--backbone.type openvla`).

Sequence layout (OpenVLA-OFT): position 0 BOS, image tokens at 1 .. 256 * num_images
(camera-major, row-major 16 x 16 each), then the proprio token (and the diffusion-timestep token), then the text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from rocket_openvla.backbones.base import BackboneAdapter, ImageTokens, pad_prompts
from rocket_openvla.backbones.openvla.configuration_openvla import PolicySpec
from rocket_openvla.backbones.openvla.modeling_openvla import OpenVLAModel
from rocket_openvla.backbones.openvla.policy import OpenVLAPolicy
from rocket_openvla.backbones.openvla.processing_openvla import (
    PREPROCESSOR_CONFIG_NAME,
    ImageNormalization,
    OpenVLAProcessor,
)
from rocket_openvla.backbones.openvla.tiny import SIZE_PRESETS
from rocket_openvla.backbones.openvla.tiny_tokenizer import build_tiny_tokenizer
from rocket_openvla.capture import CapturePoints
from rocket_openvla.errors import MissingInputError

if TYPE_CHECKING:
    from rocket_openvla.backbones.openvla.backbone_config import OpenVLABackboneConfig

logger = logging.getLogger(__name__)

TEACHER_INPUT_FORMAT = "openvla"  # pixel_values [B, 6V, H, W], per camera [DINOv2-normalised RGB | SigLIP RGB]


def lora_target_modules(vla: OpenVLAModel) -> list[str]:
    """OFT's "all-linear" LoRA targets: every `nn.Linear` of the LLM, both towers and the projector, except the LM
    head (as peft does for transformers models) and the tower modules that never run (each tower's last block and
    SigLIP's attention-pool head, see `penultimate_patch_features`): LoRA there could only be dead weight, and
    leaving it out lets DDP run without `find_unused_parameters`."""
    never_run = ["language_model.lm_head"]
    for name in ("featurizer", "fused_featurizer"):
        tower = getattr(vla.vision_backbone, name)
        never_run += [f"vision_backbone.{name}.blocks.{len(tower.blocks) - 1}.", f"vision_backbone.{name}.attn_pool."]
    return [
        name
        for name, module in vla.named_modules()
        if isinstance(module, nn.Linear) and not any(name == n or name.startswith(n) for n in never_run)
    ]


class OpenVLAAdapter(BackboneAdapter):
    """Adapter of an `OpenVLAPolicy`; see `BackboneAdapter` for the contract."""

    teacher_input_format = TEACHER_INPUT_FORMAT
    lora_attribute = "vla"

    _policy: OpenVLAPolicy
    _processor: OpenVLAProcessor

    @property
    def vla(self) -> OpenVLAModel:
        """The OpenVLAModel (under the LoRA wrapper, if any)."""
        return self._policy.base_vla

    @property
    def hidden_size(self) -> int:
        return self.vla.config.hidden_size

    @property
    def num_hidden_layers(self) -> int:
        return self.vla.config.num_hidden_layers

    @property
    def num_images(self) -> int:
        return self._policy.spec.num_images

    @property
    def action_chunk(self) -> int:
        return self._policy.spec.chunk

    @property
    def action_dim(self) -> int:
        return self._policy.spec.action_dim

    @property
    def state_dim(self) -> int | None:
        spec = self._policy.spec
        return spec.proprio_dim if spec.use_proprio else None

    @property
    def camera_grids(self) -> tuple[tuple[int, int], ...]:
        return (self.vla.vision_backbone.patch_grid,) * self.num_images

    @property
    def pixel_normalization(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """`(mean, std)` of the DINOv2 half of each camera's `pixel_values`, which the teacher inverts."""
        normalization = self._processor.normalization
        return normalization.means[0], normalization.stds[0]

    def image_tokens(self, batch: Mapping[str, Any]) -> ImageTokens:
        """Every camera is present: its 256 tokens follow BOS, camera after camera (positions 1 .. 256 * V)."""
        input_ids = batch["input_ids"]
        count = self.vla.vision_backbone.num_patches * self.num_images
        positions = torch.arange(1, 1 + count, device=input_ids.device).expand(input_ids.shape[0], -1)
        return ImageTokens(positions, torch.ones_like(positions, dtype=torch.bool))

    def lora_target_modules(self, model: nn.Module) -> list[str]:
        return lora_target_modules(model)

    def capture_points(self) -> CapturePoints:
        return CapturePoints.from_decoder(self.vla.decoder)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute decoder blocks and ViT blocks in backward (non-reentrant; capture hooks stay outside)."""
        self.vla.language_model.activation_checkpointing_enable({"use_reentrant": False})
        self.vla.vision_backbone.featurizer.set_grad_checkpointing(True)
        self.vla.vision_backbone.fused_featurizer.set_grad_checkpointing(True)

    def predict_actions(
        self,
        images: torch.Tensor,
        instructions: Sequence[str],
        proprio: torch.Tensor | None = None,
        unnorm_key: str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """OFT's parallel decoding of the prompts "In: What action should the robot take to {task}?\\nOut:"."""
        processor, device = self._processor, self.device
        input_ids, attention_mask = pad_prompts(
            [processor.prompt_input_ids(text) for text in instructions], processor.tokenizer.pad_token_id
        )
        pixel_values = torch.stack([processor.pixel_values(views) for views in images])
        return self._policy.predict_action(
            input_ids.to(device), attention_mask.to(device), pixel_values.to(device),
            proprio=None if proprio is None else proprio.to(device), unnorm_key=unnorm_key, generator=generator,
        ).actions

    def save_pretrained(self, path: str | Path, tag: str = "latest") -> None:
        """The policy's run directory (see `policy.py`) plus the tokenizer files and `preprocessor_config.json`."""
        self._policy.save_pretrained(path, tag)
        self._processor.save_pretrained(path)


def build_openvla_adapter(config: OpenVLABackboneConfig) -> OpenVLAAdapter:
    """The policy, tokenizer and image processor `config` describes (a random model, or loaded from a checkpoint)."""
    overrides = {
        "attn_implementation": config.attn_implementation,
        "bidirectional_attention": config.bidirectional_attention,
    }
    dtype = None if config.dtype is None else getattr(torch, config.dtype)
    torch.manual_seed(config.seed)
    if config.pretrained is None:
        policy = OpenVLAPolicy(OpenVLAModel(SIZE_PRESETS[config.size](**overrides)), config.policy or PolicySpec())
        if dtype is not None:
            policy.set_dtype(dtype)
        tokenizer, normalization = build_tiny_tokenizer(), ImageNormalization()
    else:
        policy = OpenVLAPolicy.from_pretrained(
            config.pretrained, base=config.base, spec=config.policy, trainable_lora=True, dtype=dtype, **overrides
        )
        tokenizer, normalization = _load_tokenizer(config), _load_image_normalization(config)
    processor = OpenVLAProcessor(tokenizer, image_size=policy.base_vla.config.image_size, normalization=normalization)
    policy.action_prefix_id = processor.action_prefix_id
    return OpenVLAAdapter(policy, processor)


def _checkpoint_dirs(config: OpenVLABackboneConfig) -> list[Path]:
    """The run/checkpoint directory first, then its base VLA."""
    return [Path(directory) for directory in (config.pretrained, config.base) if directory is not None]


def _load_tokenizer(config: OpenVLABackboneConfig) -> PreTrainedTokenizerBase:
    for directory in _checkpoint_dirs(config):
        if any(directory.glob("tokenizer*")):
            return AutoTokenizer.from_pretrained(directory)
    raise MissingInputError(
        f"no tokenizer files (tokenizer.json / tokenizer.model) in backbone.pretrained={config.pretrained!r} or "
        f"backbone.base={config.base!r}; copy them from openvla/openvla-7b into the checkpoint directory"
    )


def _load_image_normalization(config: OpenVLABackboneConfig) -> ImageNormalization:
    """The checkpoint's `preprocessor_config.json` (the run's own, else its base's); the published values without."""
    for directory in _checkpoint_dirs(config):
        normalization = ImageNormalization.from_pretrained(directory)
        if normalization is not None:
            return normalization
    logger.info(
        "no %s in %s: using openvla-7b's image normalisation", PREPROCESSOR_CONFIG_NAME, _checkpoint_dirs(config)
    )
    return ImageNormalization()
