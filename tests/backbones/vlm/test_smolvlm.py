"""SmolVLM specifics (tiny configs of the real classes): one camera is one global-image block even when the
processor splits images (as a checkpoint's does), and the connector's tokens are row-major over the camera grid."""

import numpy as np
import torch
from transformers import SmolVLMImageProcessor

from rocket_openvla.backbones.vlm.smolvlm import SmolVLMFamily

from .helpers import INSTRUCTION, tiny_adapter


def test_each_camera_is_one_global_image_block_even_with_splitting_on():
    family = SmolVLMFamily()
    processor = family.tiny_processor()
    side = processor.image_processor.max_image_size["longest_edge"]
    # as a checkpoint's: splitting on, cameras first resized to 4 x the sub-image side (so split into 4 x 4 + 1)
    processor.image_processor = SmolVLMImageProcessor(size={"longest_edge": 4 * side},
                                                      max_image_size={"longest_edge": side})
    assert processor.image_processor.do_image_splitting
    images = list(np.random.default_rng(0).integers(0, 256, (2, side, side, 3), dtype=np.uint8))
    encoded = family.encode(processor, images, INSTRUCTION)
    tokens = processor.tokenizer.convert_ids_to_tokens(encoded["input_ids"].tolist())
    block = ["<fake_token_around_image>", "<global-img>", *["<image>"] * processor.image_seq_len,
             "<fake_token_around_image>"]
    assert tokens == block + block + list(INSTRUCTION)
    assert encoded["pixel_values"].shape == (2, 3, side, side)
    assert encoded["pixel_attention_mask"].shape == (2, side, side) and encoded["pixel_attention_mask"].all()


def test_the_camera_grid_is_the_pixel_shuffled_patch_grid_row_major():
    adapter = tiny_adapter("smolvlm")
    config = adapter.policy.base_vlm.config
    patches = config.vision_config.image_size // config.vision_config.patch_size
    scale = config.scale_factor
    assert adapter.camera_grids == ((patches // scale, patches // scale),) * 2
    assert adapter.processor.tokens_per_camera == [(patches // scale) ** 2] * 2
    # token t of the connector holds the scale x scale patches of grid cell (t // side, t % side)
    rows, cols = torch.meshgrid(torch.arange(patches), torch.arange(patches), indexing="ij")
    features = torch.stack([rows, cols], dim=-1).reshape(1, patches * patches, 2).float()
    shuffled = adapter.policy.base_vlm.model.connector.pixel_shuffle(features, scale)
    side = patches // scale
    assert shuffled.shape == (1, side * side, 2 * scale * scale)
    for token in range(side * side):
        merged = shuffled[0, token].reshape(scale * scale, 2)
        assert set(merged[:, 0].long().tolist()) == {scale * (token // side) + i for i in range(scale)}
        assert set(merged[:, 1].long().tolist()) == {scale * (token % side) + i for i in range(scale)}
