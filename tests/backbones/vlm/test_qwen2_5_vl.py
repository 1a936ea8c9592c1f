"""What only Qwen2.5-VL has (tiny real model, cameras of 224 and 112 px): each camera its own token grid, 3-D mRoPE
positions of the image tokens (row-major over the merged grid), positions recomputed per batch (no stale
`rope_deltas`), right padding that changes nothing, and bidirectional attention in its decoder."""

import numpy as np
import pytest
import torch

from rocket_openvla.backbones.vlm.configuration_vlm import VLMPolicySpec
from rocket_openvla.backbones.vlm.qwen2_5_vl import Qwen25VLBackboneConfig, Qwen25VLFamily

from .helpers import FAMILIES, batch_of, raw_sample, tiny_adapter

FAMILY = "qwen2_5_vl"
SIZES = FAMILIES[FAMILY]["image_sizes"]  # [224, 112]: two different cameras in every sample


@pytest.fixture(scope="module")
def adapter():
    return tiny_adapter(FAMILY)


def rope_positions(adapter, batch: dict) -> torch.Tensor:
    """The `[3, B, L]` (time, row, column) position ids the decoder's rotary embedding gets in a policy forward."""
    seen = []
    handle = adapter.policy.language_model.rotary_emb.register_forward_pre_hook(lambda _, args: seen.append(args[1]))
    try:
        with torch.no_grad():
            adapter.policy.vlm_outputs(batch, batch["state"])
    finally:
        handle.remove()
    return seen[0]


def expected_positions(input_ids: torch.Tensor, image_token_id: int, grids: list[tuple[int, int]]) -> torch.Tensor:
    """Qwen2.5-VL's rule: text tokens count up by one on all three axes; camera c's token k = r * w + col sits at
    (p, p + r, p + col) after position p - 1, and the text after it continues at p + max(h, w)."""
    positions, next_position, index, cameras = [], 0, 0, iter(grids)
    while index < len(input_ids):
        if input_ids[index] != image_token_id:
            positions.append([next_position] * 3)
            next_position, index = next_position + 1, index + 1
            continue
        height, width = next(cameras)
        positions += [[next_position, next_position + r, next_position + col]
                      for r in range(height) for col in range(width)]
        next_position, index = next_position + max(height, width), index + height * width
    return torch.tensor(positions).T


def test_each_camera_gets_its_own_grid_and_token_count(adapter):
    assert adapter.camera_grids == ((8, 8), (4, 4))  # 224 and 112 px: 16 x 16 and 8 x 8 patches, merged 2 x 2
    batch = batch_of(adapter)
    assert batch["image_grid_thw"].tolist() == [[1, 16, 16], [1, 8, 8]] * 2  # in sample, then camera order
    assert batch["pixel_values"].shape == (2 * (256 + 64), 3 * 2 * 14 * 14)
    blocks = torch.split(adapter.image_tokens(batch).positions[0], [64, 16])
    tokens = adapter.processor.processor.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    for block in blocks:  # <|vision_start|> image tokens <|vision_end|>, per camera
        assert (tokens[block[0] - 1], tokens[block[-1] + 1]) == ("<|vision_start|>", "<|vision_end|>")


def test_without_image_sizes_every_camera_is_resized_to_224_px():
    adapter = Qwen25VLBackboneConfig().build()  # image_sizes null; the samples are 128 px
    assert adapter.camera_grids == ((8, 8), (8, 8))
    batch = batch_of(adapter)
    assert batch["image_grid_thw"].tolist() == [[1, 16, 16]] * 4
    assert adapter.image_tokens(batch).positions.shape == (2, 128)


@pytest.mark.parametrize("size", [100, 128, 224, 250])
def test_camera_grid_is_what_the_processor_makes_of_a_camera(adapter, size):
    processor = adapter.processor.processor
    image = np.zeros((size, size, 3), dtype=np.uint8)
    encoded = Qwen25VLFamily().encode(processor, [image], "go")
    grid = Qwen25VLFamily().camera_grid(adapter.policy.base_vlm.config, size)
    assert tuple(encoded["image_grid_thw"][0, 1:].div(2).tolist()) == grid  # smart_resize to multiples of 28
    assert int((encoded["input_ids"] == processor.image_token_id).sum()) == grid[0] * grid[1]


def test_image_tokens_get_3d_mrope_positions_row_major(adapter):
    batch = batch_of(adapter)
    positions = rope_positions(adapter, batch)
    assert positions.shape == (3, *batch["input_ids"].shape)
    for row in range(2):
        expected = expected_positions(batch["input_ids"][row], adapter.processor.image_token_id,
                                      list(adapter.camera_grids))
        assert torch.equal(positions[:, row], expected)  # mm_token_type_ids reached the model
    assert not torch.equal(positions[1], positions[2])  # not the 1-D fallback, where all three axes are equal


def test_the_processors_patches_are_row_major_over_the_merged_grid(adapter):
    # a 112 px camera whose 28 x 28 blocks (one merged token each) hold 0, 16, ... 240: token k comes from block k
    image = np.repeat(np.repeat(np.arange(16).reshape(4, 4) * 16, 28, 0), 28, 1).astype(np.uint8)
    encoded = Qwen25VLFamily().encode(adapter.processor.processor, [np.stack([image] * 3, -1)], "go")
    values = encoded["pixel_values"].view(16, 4, 3, -1)  # [merged token, its 2 x 2 patches, channel, 2 x 14 x 14]
    assert torch.allclose(values, values[:, :1, :, :1].expand_as(values), atol=1e-5)  # one block per merged token
    assert (values[:, 0, :, 0].diff(dim=0) > 0).all()  # ... in row-major block order


def test_positions_are_recomputed_for_every_batch(adapter):
    policy, batch = adapter.policy.eval(), batch_of(adapter)
    with torch.no_grad():
        reference = policy.vlm_outputs(batch, batch["state"]).last_hidden_state
        policy.base_vlm.model.rope_deltas = torch.full((5, 1), 1000)  # stale deltas of some other batch
        again = policy.vlm_outputs(batch, batch["state"]).last_hidden_state
    assert torch.equal(again, reference)


def test_right_padding_changes_nothing(adapter):
    processor, policy = adapter.processor, adapter.policy.eval()
    longer = dict(raw_sample(1, with_actions=False), instruction="open the top drawer of the cabinet")
    padded = processor.collator()([processor(raw_sample(0, with_actions=False)), processor(longer)])
    alone = processor.collator()([processor(raw_sample(0, with_actions=False))])
    assert padded["attention_mask"][0].sum() < padded["input_ids"].shape[1]
    with torch.no_grad():
        in_batch = policy.vlm_outputs(padded, padded["state"]).last_hidden_state[0, : alone["input_ids"].shape[1]]
        by_itself = policy.vlm_outputs(alone, alone["state"]).last_hidden_state[0]
    torch.testing.assert_close(in_batch, by_itself, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_image_tokens_see_the_state_only_with_bidirectional_attention(bidirectional):
    spec = VLMPolicySpec(**FAMILIES[FAMILY], bidirectional=bidirectional)
    adapter = Qwen25VLBackboneConfig(policy=spec).build()
    policy, batch = adapter.policy.eval(), batch_of(adapter)
    with torch.no_grad():
        states = [policy.vlm_outputs(batch, state).last_hidden_state for state in (batch["state"], -batch["state"])]
    first_image_token = adapter.image_tokens(batch).positions[0, 0]
    changed = not torch.allclose(states[0][0, first_image_token], states[1][0, first_image_token])
    assert changed == bidirectional
