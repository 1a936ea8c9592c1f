"""Qwen2.5-VL (`--backbone.type qwen2_5_vl`): a ViT that merges 2 x 2 patches + a Qwen2.5 decoder with 3-D mRoPE.

Prompt: per camera `<|vision_start|>`, its image tokens (`<|image_pad|>`), `<|vision_end|>`; then the instruction.
Each camera keeps its own size: the processor resizes it to multiples of 28 (14 px patches, merged 2 x 2;
`smart_resize`) and writes one token per merged patch, row-major: 8 x 8 = 64 at 224 px, 4 x 4 = 16 at 112 px
(`backbone.policy.image_sizes` sets the sides). `pixel_values` are the flattened patches of all images
`[sum of t*h*w, 3*2*14*14]`, `image_grid_thw` each image's (t, h, w) patch grid, in sample and camera order.

Positions: the model gives image tokens 3-D (time, row, column) mRoPE positions only when it gets
`mm_token_type_ids` (0 text, 1 image; the processor writes them, the proprio / action slots get 0); without them it
silently falls back to 1-D positions. It caches the last batch's `rope_deltas` on itself but reads them only with a
KV cache or without `input_ids`; the policy passes `input_ids` and no cache, so every forward computes its positions
from its own batch and nothing needs resetting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from rocket_openvla.backbones.registry import BackboneConfig
from rocket_openvla.backbones.vlm.family import VLMBackboneConfig, VLMFamily

TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1000,  # head_dim 16 = 2 x sum(mrope_section)
                 rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[2, 3, 3]))
TINY_VISION = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=64, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"


class Qwen25VLFamily(VLMFamily):
    model_type = "qwen2_5_vl"
    token_inputs = ("mm_token_type_ids",)
    vision_input_names = ("pixel_values", "image_grid_thw")
    grid_follows_image_size = True

    def model_class(self) -> type:
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration

    def tiny_config(self) -> Any:
        from transformers import Qwen2_5_VLConfig

        tokenizer = self.tiny_processor().tokenizer
        start, end, image, video = tokenizer.convert_tokens_to_ids([VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD])
        text = dict(TINY_TEXT, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        return Qwen2_5_VLConfig(text_config=text, vision_config=TINY_VISION, image_token_id=image,
                                video_token_id=video, vision_start_token_id=start, vision_end_token_id=end)

    def tiny_processor(self) -> Any:
        from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

        from rocket_openvla.backbones.char_tokenizer import build_char_tokenizer

        # The default pixel bounds (56^2 to 28^2 x 1280) leave square cameras of 56 to 1003 px at their own size
        # (rounded to 28); the processor class requires a video processor, which no sample uses.
        tokenizer = build_char_tokenizer([VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD])
        return Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer,
                                   video_processor=Qwen2VLVideoProcessor())

    def camera_grid(self, config: Any, image_size: int | None) -> tuple[int, int]:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        vision = config.vision_config
        factor = vision.patch_size * vision.spatial_merge_size  # one token per merged patch
        height, width = smart_resize(image_size, image_size, factor=factor)
        return height // factor, width // factor

    def encode(self, processor: Any, images: Sequence[Any], instruction: str) -> dict[str, torch.Tensor]:
        # the processor expands each camera's <|image_pad|> to its tokens and marks them in mm_token_type_ids
        prompt = (VISION_START + processor.image_token + VISION_END) * len(images) + instruction
        encoded = processor(text=prompt, images=[list(images)], return_tensors="pt")
        return {"input_ids": encoded["input_ids"][0], "mm_token_type_ids": encoded["mm_token_type_ids"][0],
                "pixel_values": encoded["pixel_values"], "image_grid_thw": encoded["image_grid_thw"]}

    def collate_vision(self, examples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {name: torch.cat([example[name] for example in examples])  # patches [sum t*h*w, ...], grids [B*V, 3]
                for name in self.vision_input_names}


@BackboneConfig.register_subclass("qwen2_5_vl")
@dataclass
class Qwen25VLBackboneConfig(VLMBackboneConfig):
    """Qwen2.5-VL (e.g. Qwen/Qwen2.5-VL-3B-Instruct) with an OFT-style action head; its token grid per camera follows
    `policy.image_sizes` (null: 224 px each)."""

    family_class: ClassVar[str] = "rocket_openvla.backbones.vlm.qwen2_5_vl:Qwen25VLFamily"
