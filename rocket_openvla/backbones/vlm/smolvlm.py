"""SmolVLM (`--backbone.type smolvlm`): SigLIP + pixel-shuffle connector + Llama. Image splitting is off, so each
camera is one global image (squared to the processor's `max_image_size`) and one block
`<fake_token_around_image><global-img>` + n x `<image>` + `<fake_token_around_image>`, camera after camera, then the
instruction. n = (image_size / patch_size / scale_factor)^2 tokens, row-major over the square grid of the connector's
pixel shuffle (the tiny model: 16, a 4 x 4 grid). The processor needs the `num2words` package."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from rocket_openvla.backbones.registry import BackboneConfig
from rocket_openvla.backbones.vlm.family import VLMBackboneConfig, VLMFamily

TINY_TEXT = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=128,
                   patch_size=16)  # 8 x 8 patches
TINY_SCALE_FACTOR = 2  # the pixel shuffle merges 2 x 2 patches: a 4 x 4 token grid
# What the processor writes around and into the image blocks (their default strings).
SPECIAL_TOKENS = ("<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>")


class SmolVLMFamily(VLMFamily):
    model_type = "smolvlm"
    vision_input_names = ("pixel_values", "pixel_attention_mask")

    def model_class(self) -> type:
        from transformers import SmolVLMForConditionalGeneration

        return SmolVLMForConditionalGeneration

    def tiny_config(self) -> Any:
        from transformers import SmolVLMConfig

        return SmolVLMConfig(text_config=TINY_TEXT, vision_config=TINY_VISION, scale_factor=TINY_SCALE_FACTOR,
                             image_token_id=self.tiny_processor().image_token_id)

    def tiny_processor(self) -> Any:
        from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

        from rocket_openvla.backbones.char_tokenizer import build_char_tokenizer

        side = {"longest_edge": TINY_VISION["image_size"]}
        image_processor = SmolVLMImageProcessor(do_image_splitting=False, size=side, max_image_size=side)
        tokens = (TINY_VISION["image_size"] // TINY_VISION["patch_size"] // TINY_SCALE_FACTOR) ** 2
        return SmolVLMProcessor(image_processor=image_processor, tokenizer=build_char_tokenizer(SPECIAL_TOKENS),
                                video_processor=SmolVLMVideoProcessor(), image_seq_len=tokens)

    def language_model(self, model: nn.Module) -> nn.Module:
        return model.model.text_model

    def camera_grid(self, config: Any, image_size: int | None) -> tuple[int, int]:
        vision = config.vision_config  # the processor squares every camera to the model's own input size
        side = vision.image_size // vision.patch_size // config.scale_factor
        return side, side

    def encode(self, processor: Any, images: Sequence[Any], instruction: str) -> dict[str, torch.Tensor]:
        # one <image> per camera; the processor expands each to its block (splitting off, also for checkpoints)
        encoded = processor(text=processor.image_token * len(images) + instruction, images=[list(images)],
                            do_image_splitting=False, return_tensors="pt")
        return {"input_ids": encoded["input_ids"][0], "pixel_values": encoded["pixel_values"][0],
                "pixel_attention_mask": encoded["pixel_attention_mask"][0].bool()}  # [V, 3, S, S], [V, S, S]

    def collate_vision(self, examples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        # [B, V, 3, S, S], [B, V, S, S]: every sample has all V cameras, so no all-zero padding image (the model
        # drops those)
        return {name: torch.stack([example[name] for example in examples]) for name in self.vision_input_names}


@BackboneConfig.register_subclass("smolvlm")
@dataclass
class SmolVLMBackboneConfig(VLMBackboneConfig):
    """SmolVLM (e.g. HuggingFaceTB/SmolVLM-256M-Instruct) with an OFT-style action head."""

    family_class: ClassVar[str] = "rocket_openvla.backbones.vlm.smolvlm:SmolVLMFamily"
