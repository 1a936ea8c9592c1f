"""PaliGemma (`--backbone.type paligemma`): SigLIP + Gemma; each camera's image tokens (256 at 224 px, a 16 x 16
grid) come first, camera after camera, then BOS, the instruction and "\\n" (PaliGemma's processor)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from rocket_openvla.backbones.registry import BackboneConfig
from rocket_openvla.backbones.vlm.family import VLMBackboneConfig, VLMFamily

TINY_TEXT = dict(model_type="gemma", hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=1, head_dim=16, vocab_size=1000)
TINY_VISION = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, image_size=224, patch_size=14, vision_use_head=False)  # 16 x 16 tokens


class PaliGemmaFamily(VLMFamily):
    model_type = "paligemma"

    def model_class(self) -> type:
        from transformers import PaliGemmaForConditionalGeneration

        return PaliGemmaForConditionalGeneration

    def tiny_config(self) -> Any:
        from transformers import PaliGemmaConfig

        image_token_id = self.tiny_processor().image_token_id
        return PaliGemmaConfig(text_config=TINY_TEXT, vision_config=TINY_VISION, projection_dim=64, hidden_size=64,
                               image_token_id=image_token_id, vocab_size=TINY_TEXT["vocab_size"])

    def tiny_processor(self) -> Any:
        from transformers import PaliGemmaProcessor, SiglipImageProcessor

        from rocket_openvla.backbones.char_tokenizer import build_char_tokenizer

        size = TINY_VISION["image_size"]
        image_processor = SiglipImageProcessor(size={"height": size, "width": size})
        image_processor.image_seq_length = (size // TINY_VISION["patch_size"]) ** 2
        return PaliGemmaProcessor(image_processor=image_processor, tokenizer=build_char_tokenizer(["<image>"]))

    def camera_grid(self, config: Any, image_size: int | None) -> tuple[int, int]:
        vision = config.vision_config  # the processor resizes every camera to the model's own input size
        side = vision.image_size // vision.patch_size
        return side, side

    def encode(self, processor: Any, images: Sequence[Any], instruction: str) -> dict[str, torch.Tensor]:
        # one <image> per camera; the processor expands each to its tokens and adds BOS and "\n"
        encoded = processor(text=processor.image_token * len(images) + instruction, images=[list(images)],
                            return_tensors="pt")
        return {"input_ids": encoded["input_ids"][0], "pixel_values": encoded["pixel_values"]}

    def collate_vision(self, examples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.cat([example["pixel_values"] for example in examples])}  # [B * V, 3, S, S]


@BackboneConfig.register_subclass("paligemma")
@dataclass
class PaliGemmaBackboneConfig(VLMBackboneConfig):
    """PaliGemma (e.g. google/paligemma-3b-pt-224) with an OFT-style action head."""

    family_class: ClassVar[str] = "rocket_openvla.backbones.vlm.paligemma:PaliGemmaFamily"
