"""`VLMAdapter`: any transformers VLM family (with the OFT-style action head of `VLMActionPolicy`) behind the
`BackboneAdapter` interface, and `build_vlm_adapter`, which builds it from a family's registered config.

What ROCKET aligns: the VLM language model's `hidden_states[k]` at the image tokens of each camera, found per
sample by the image-token id (camera after camera, each block row-major over the camera's token grid). The teacher
gets the cameras as the data pipeline delivered them (`teacher_images`, in [0, 1]).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rocket_openvla.backbones.base import BackboneAdapter, ImageTokens, image_token_positions, tensors_to
from rocket_openvla.backbones.vlm.configuration_vlm import VLMPolicySpec
from rocket_openvla.backbones.vlm.family import VLMFamily
from rocket_openvla.backbones.vlm.policy import VLMActionPolicy
from rocket_openvla.backbones.vlm.processing_vlm import VLMInputProcessor
from rocket_openvla.capture import CapturePoints
from rocket_openvla.errors import MissingInputError

if TYPE_CHECKING:
    from rocket_openvla.backbones.vlm.family import VLMBackboneConfig

logger = logging.getLogger(__name__)

TEACHER_INPUT_FORMAT = "unit"  # teacher_images [B, V, 3, S, S] in [0, 1]
# Camera side when backbone.policy.image_sizes is null and the family's token grid follows the camera size.
DEFAULT_IMAGE_SIZE = 224


class VLMAdapter(BackboneAdapter):
    """Adapter of a `VLMActionPolicy`; see `BackboneAdapter` for the contract."""

    teacher_input_format = TEACHER_INPUT_FORMAT
    lora_attribute = "vlm"  # peft's "all-linear"; the action head, proprio projector and queries train fully
    _policy: VLMActionPolicy
    _processor: VLMInputProcessor

    def __init__(self, policy: VLMActionPolicy, processor: VLMInputProcessor,
                 camera_grids: tuple[tuple[int, int], ...]) -> None:
        super().__init__(policy, processor)
        self._camera_grids = camera_grids

    @property
    def hidden_size(self) -> int:
        return self._policy.text_config.hidden_size

    @property
    def num_hidden_layers(self) -> int:
        return self._policy.text_config.num_hidden_layers

    @property
    def num_images(self) -> int:
        return self._policy.spec.num_images

    @property
    def camera_grids(self) -> tuple[tuple[int, int], ...]:
        return self._camera_grids

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

    def image_tokens(self, batch: Mapping[str, Any]) -> ImageTokens:
        return image_token_positions(batch["input_ids"], self._processor.image_token_id,
                                     self._processor.tokens_per_camera)

    def teacher_images(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return batch["teacher_images"]

    def capture_points(self) -> CapturePoints:
        return CapturePoints.from_decoder(self._policy.language_model)

    def predict_actions(
        self,
        images: torch.Tensor,
        instructions: Sequence[str],
        proprio: torch.Tensor | None = None,
        unnorm_key: str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One parallel pass of the family's prompt + the action queries (the L1 head samples nothing)."""
        processor = self._processor
        examples = [processor({"images": views, "instruction": text}) for views, text in zip(images, instructions)]
        batch = tensors_to(processor.collator()(examples), self.device)
        return self._policy.predict_action(
            batch, proprio=None if proprio is None else proprio.to(self.device), unnorm_key=unnorm_key
        ).actions

    def save_pretrained(self, path: str | Path, tag: str = "latest") -> None:
        """The policy's run directory (see `policy.py`) plus the processor files."""
        self._policy.save_pretrained(path)
        self._processor.save_pretrained(path)


def build_vlm_adapter(config: VLMBackboneConfig, family: VLMFamily) -> VLMAdapter:
    """The policy and processor `config` describes: a tiny random VLM, a VLM checkpoint, or one of our runs."""
    dtype = None if config.dtype is None else getattr(torch, config.dtype)
    torch.manual_seed(config.seed)
    if config.pretrained is None:
        vlm_config = family.tiny_config()
        vlm_config._attn_implementation = config.attn_implementation
        policy = VLMActionPolicy(family.model_class()(vlm_config), family, config.policy or VLMPolicySpec())
        processor = family.tiny_processor()
        if dtype is not None:
            policy.set_dtype(dtype)
    else:
        policy = VLMActionPolicy.from_pretrained(
            config.pretrained, family, base=config.base, spec=config.policy, trainable_lora=True, dtype=dtype,
            attn_implementation=config.attn_implementation,
        )
        processor = _load_processor(config, family)
    model_config, spec = policy.base_vlm.config, policy.spec
    image_sizes = spec.image_sizes
    if image_sizes is None and family.grid_follows_image_size:
        image_sizes = [DEFAULT_IMAGE_SIZE] * spec.num_images
    grids = tuple(family.camera_grid(model_config, size) for size in image_sizes or [None] * spec.num_images)
    inputs = VLMInputProcessor(processor, family, spec, family.image_token_id(model_config),
                               [gh * gw for gh, gw in grids], image_sizes)
    return VLMAdapter(policy, inputs, grids)


def _load_processor(config: VLMBackboneConfig, family: VLMFamily) -> Any:
    for directory in (config.processor, config.pretrained, config.base):
        if directory is not None and any(Path(directory).glob("*processor*config*.json")):
            return family.load_processor(Path(directory))
    raise MissingInputError(
        f"no processor files (preprocessor_config.json / processor_config.json and the tokenizer) in "
        f"backbone.processor={config.processor!r}, backbone.pretrained={config.pretrained!r} or "
        f"backbone.base={config.base!r}; pass the directory of the checkpoint's processor (--backbone.processor)"
    )
