"""VGGTAggregator: parity with the original code (golden data), the 1B key table, and behaviour on tiny configs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from rocket_openvla.teachers.vggt import VGGT_1B, VGGTAggregator
from tests.fixtures import VGGT_1B_AGGREGATOR_KEYS

from ..helpers import TINY

KEY_TABLE = VGGT_1B_AGGREGATOR_KEYS


@pytest.mark.parametrize("name", ["images_518", "images_378x518"])
def test_reproduces_original_block_outputs(golden_vggt_dir, name):
    config = json.loads((golden_vggt_dir / "config.json").read_text())
    del config["patch_embed"]  # prose description of the DINOv2 embedder
    aggregator = VGGTAggregator(**config).eval()
    aggregator.load_state_dict(load_file(golden_vggt_dir / "weights.safetensors"), strict=True)
    images = load_file(golden_vggt_dir / "inputs.safetensors")[name]
    expected = load_file(golden_vggt_dir / "outputs.safetensors")

    # The fixture keeps every frame's 5 special tokens and every k-th patch token (indices stored alongside).
    tokens = expected[f"{name}.token_indices"]

    with torch.no_grad():
        outputs, patch_start_idx = aggregator(images)

    assert patch_start_idx == expected[f"{name}.patch_start_idx"].item()
    assert tokens[:patch_start_idx].tolist() == list(range(patch_start_idx))
    assert len(outputs) == config["depth"]
    height, width = images.shape[-2:]
    num_tokens = patch_start_idx + (height // config["patch_size"]) * (width // config["patch_size"])
    for block, output in enumerate(outputs):
        assert output.shape == (*images.shape[:2], num_tokens, 2 * config["embed_dim"])
        torch.testing.assert_close(output[:, :, tokens], expected[f"{name}.block{block}"], atol=1e-5, rtol=0)


def test_1b_config_matches_official_key_table_on_meta_device():
    rows = [line.split("\t") for line in KEY_TABLE.read_text().splitlines()[1:]]
    expected = [(key.removeprefix("aggregator."), shape) for key, shape in rows]

    with torch.device("meta"):
        aggregator = VGGTAggregator()
    state = aggregator.state_dict()

    assert aggregator.config == VGGT_1B
    assert [(key, str(list(tensor.shape))) for key, tensor in state.items()] == expected
    assert all(tensor.is_meta for tensor in state.values())
    assert sum(tensor.numel() for tensor in state.values()) == 909_112_320
    assert not aggregator.patch_embed.mask_token.requires_grad


def test_output_shapes_and_patch_start(tiny_aggregator):
    aggregator = tiny_aggregator()
    images = torch.rand(2, 3, 3, 28, 42)  # 2x3 patch grid, pos embed interpolated from 3x3

    with torch.no_grad():
        outputs, patch_start_idx = aggregator(images)

    assert patch_start_idx == 1 + TINY.num_register_tokens
    assert [tuple(o.shape) for o in outputs] == [(2, 3, patch_start_idx + 6, 2 * TINY.embed_dim)] * TINY.depth
    assert all(o.dtype == torch.float32 for o in outputs)


def test_early_exit_is_exact_and_skips_deeper_blocks(tiny_aggregator):
    aggregator = tiny_aggregator()
    images = torch.rand(1, 2, 3, 42, 42)
    calls = []
    for index, block in enumerate(aggregator.global_blocks):
        block.register_forward_hook(lambda module, args, out, index=index: calls.append(index))

    with torch.no_grad():
        full, _ = aggregator(images)
        calls.clear()
        (early,), _ = aggregator(images, layers=[1])

    assert calls == [0, 1]
    assert torch.equal(early, full[1])


def test_layers_follow_requested_order_and_negative_indices(tiny_aggregator):
    aggregator = tiny_aggregator()
    images = torch.rand(1, 2, 3, 42, 42)
    with torch.no_grad():
        full, _ = aggregator(images)
        picked, _ = aggregator(images, layers=[-1, 0, 2])
    for output, block in zip(picked, [2, 0, 2], strict=True):
        assert torch.equal(output, full[block])


def test_frame_zero_uses_first_token_variant_and_other_frames_the_second(tiny_aggregator):
    aggregator = tiny_aggregator()
    frame = torch.rand(1, 1, 3, 42, 42)
    images = frame.expand(1, 3, -1, -1, -1)  # three identical frames
    dim = TINY.embed_dim

    with torch.no_grad():
        (block0,), _ = aggregator(images, layers=[0])
        # Block 0's frame-attention half depends on the frame's own tokens only: changing the second variant
        # must leave frame 0 untouched and change frames 1 and 2.
        aggregator.camera_token[:, 1] += 1.0
        (changed,), _ = aggregator(images, layers=[0])

    torch.testing.assert_close(block0[:, 1], block0[:, 2], atol=1e-6, rtol=0)
    assert (block0[:, 0] - block0[:, 1]).abs().max() > 1e-2
    assert torch.equal(changed[:, 0, :, :dim], block0[:, 0, :, :dim])
    for frame in (1, 2):
        assert (changed[:, frame, :, :dim] - block0[:, frame, :, :dim]).abs().max() > 1e-2


def test_identical_token_variants_make_identical_frames_identical(tiny_aggregator):
    aggregator = tiny_aggregator()
    with torch.no_grad():
        aggregator.camera_token[:, 1] = aggregator.camera_token[:, 0]
        aggregator.register_token[:, 1] = aggregator.register_token[:, 0]
        images = torch.rand(1, 1, 3, 42, 42).expand(1, 3, -1, -1, -1)
        outputs, _ = aggregator(images)
    for output in outputs:
        torch.testing.assert_close(output[:, 0], output[:, 2], atol=1e-5, rtol=0)
        torch.testing.assert_close(output[:, 1], output[:, 2], atol=1e-5, rtol=0)


def test_permuting_later_frames_permutes_outputs(tiny_aggregator):
    aggregator = tiny_aggregator()
    images = torch.rand(2, 4, 3, 28, 42)
    order = [0, 3, 1, 2]  # frame 0 stays the reference frame
    with torch.no_grad():
        outputs, _ = aggregator(images)
        permuted, _ = aggregator(images[:, order])
    for output, output_permuted in zip(outputs, permuted, strict=True):
        torch.testing.assert_close(output_permuted, output[:, order], atol=1e-5, rtol=0)


def test_single_frame_sequence(tiny_aggregator):
    aggregator = tiny_aggregator()
    with torch.no_grad():
        (output,), _ = aggregator(torch.rand(2, 1, 3, 42, 42), layers=[0])
    assert output.shape == (2, 1, 5 + 9, 2 * TINY.embed_dim)


@pytest.mark.parametrize(
    ("shape", "layers", "message"),
    [
        ((1, 2, 3, 42, 40), None, "not a multiple of patch_size=14"),
        ((1, 3, 42, 42), None, r"expects images \[B, S, 3, H, W\]"),
        ((1, 2, 4, 42, 42), None, r"expects images \[B, S, 3, H, W\]"),
        ((1, 2, 3, 42, 42), [3], "index 3 is out of range for 3 entries"),
        ((1, 2, 3, 42, 42), [-4], "index -4 is out of range"),
        ((1, 2, 3, 42, 42), [], "layers is empty"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(tiny_aggregator, shape, layers, message):
    aggregator = tiny_aggregator()
    with pytest.raises(ValueError, match=message):
        aggregator(torch.rand(shape), layers=layers)
