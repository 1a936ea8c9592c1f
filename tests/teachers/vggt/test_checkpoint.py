"""Loading the aggregator strictly from a checkpoint in the official layout (heads present) or an export."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from rocket_openvla.teachers.vggt import VGGTAggregatorConfig, load_aggregator

from ..helpers import TINY

# A few tensors of each head, named as in the official model.pt.
HEAD_TENSORS = {
    "camera_head.trunk.0.norm1.weight": torch.ones(8),
    "depth_head.projects.0.weight": torch.zeros(4, 8, 1, 1),
    "point_head.scratch.output_conv2.0.bias": torch.zeros(4),
    "track_head.feature_extractor.norm.weight": torch.ones(8),
}


def _official_state(aggregator) -> dict[str, torch.Tensor]:
    state = {f"aggregator.{key}": tensor.clone() for key, tensor in aggregator.state_dict().items()}
    return state | HEAD_TENSORS


@pytest.fixture
def source(tiny_aggregator):
    return tiny_aggregator(seed=3)


def test_official_layout_loads_strictly_and_reproduces_outputs(source, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_official_state(source), path)
    images = torch.rand(1, 2, 3, 28, 42)

    loaded = load_aggregator(path, TINY).eval()
    with torch.no_grad():
        expected, _ = source(images)
        outputs, _ = loaded(images)

    for output, reference in zip(outputs, expected, strict=True):
        assert torch.equal(output, reference)
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])


def test_aggregator_only_safetensors_export_loads_with_empty_prefix(source, tmp_path):
    path = tmp_path / "aggregator.safetensors"
    save_file({key: tensor.contiguous() for key, tensor in source.state_dict().items()}, path)
    loaded = load_aggregator(path, TINY, prefix="")
    for key, tensor in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor)


def test_half_precision_export_is_loaded_as_fp32(source, tmp_path):
    path = tmp_path / "bf16.safetensors"
    save_file({key: tensor.to(torch.bfloat16) for key, tensor in _official_state(source).items()}, path)
    loaded = load_aggregator(path, TINY)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}


def _save_and_load_error(state, tmp_path, config=TINY) -> str:
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(ValueError) as error:
        load_aggregator(path, config)
    return str(error.value)


def test_missing_key_is_named(source, tmp_path):
    state = _official_state(source)
    del state["aggregator.global_blocks.1.attn.k_norm.bias"]
    message = _save_and_load_error(state, tmp_path)
    assert "missing keys: 1 (aggregator.global_blocks.1.attn.k_norm.bias)" in message
    assert "unexpected" not in message


def test_unexpected_keys_are_named(source, tmp_path):
    state = _official_state(source) | {"aggregator.frame_blocks.9.ls1.gamma": torch.ones(32), "extra.x": torch.ones(1)}
    message = _save_and_load_error(state, tmp_path)
    assert "unexpected keys: 2 (aggregator.frame_blocks.9.ls1.gamma, extra.x)" in message


def test_config_mismatch_names_the_shapes(source, tmp_path):
    wider = VGGTAggregatorConfig(**(TINY.to_dict() | {"embed_dim": 64}))
    message = _save_and_load_error(_official_state(source), tmp_path, config=wider)
    assert "aggregator.camera_token: checkpoint (1, 2, 1, 32) vs model (1, 2, 1, 64)" in message
    assert "Pass the config the checkpoint was made with" in message


def test_wrong_file_without_aggregator_keys(tmp_path):
    message = _save_and_load_error({"encoder.weight": torch.ones(2)}, tmp_path)
    assert "missing keys:" in message and "unexpected keys: 1 (encoder.weight)" in message


def test_nested_checkpoint_is_rejected(source, tmp_path):
    path = tmp_path / "nested.pt"
    torch.save({"model": _official_state(source)}, path)
    with pytest.raises(ValueError, match="not a plain state dict of tensors"):
        load_aggregator(path, TINY)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pt"):
        load_aggregator(tmp_path / "nope.pt", TINY)
