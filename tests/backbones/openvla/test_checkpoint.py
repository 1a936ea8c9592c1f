"""Checkpoint I/O: the published key names and layout load strictly, save -> load is bit-exact, bad dirs are named."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rocket_openvla.backbones.openvla.checkpoint import INDEX_NAME, find_component_file
from rocket_openvla.backbones.openvla.configuration_openvla import PolicySpec
from rocket_openvla.backbones.openvla.modeling_openvla import OpenVLAModel
from rocket_openvla.backbones.openvla.policy import OpenVLAPolicy
from rocket_openvla.backbones.openvla.tiny import openvla_7b_config
from tests.fixtures import OPENVLA_7B_KEYS

KEY_TABLE = OPENVLA_7B_KEYS


def read_key_table() -> dict[str, tuple[int, ...]]:
    rows = [line.split("\t") for line in KEY_TABLE.read_text().splitlines()[1:]]
    return {key: tuple(int(n) for n in shape.split("x")) for key, shape, _ in rows}


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_7b_policy_has_exactly_the_published_keys_and_shapes():
    """Built on the meta device: no memory is allocated for the 7.7B parameters."""
    with torch.device("meta"):
        policy = OpenVLAPolicy(OpenVLAModel(openvla_7b_config()), PolicySpec())
    state = {key: tuple(t.shape) for key, t in policy.state_dict().items()}
    assert all(t.is_meta for t in policy.state_dict().values())
    assert state == read_key_table()
    assert "vla.vision_backbone.featurizer.blocks.0.ls1.scale_factor" in state


def test_published_layout_loads_strictly_and_computes_like_the_original(published_checkpoint, golden, golden_policy):
    model = OpenVLAModel.from_pretrained(published_checkpoint)
    assert not model.training
    assert_same_state(model, golden_policy.vla)
    inputs = golden["inputs"]
    args = (inputs["input_ids"], inputs["attention_mask"], inputs["pixel_values"])
    with torch.no_grad():
        loaded, reference = model(*args, compute_logits=False), golden_policy.vla(*args, compute_logits=False)
    assert torch.equal(loaded.last_hidden_state, reference.last_hidden_state)


def test_dtype_is_applied_on_load(published_checkpoint):
    model = OpenVLAModel.from_pretrained(published_checkpoint, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.decoder.rotary_emb.inv_freq.dtype == torch.float32 and not model.decoder.rotary_emb.inv_freq.is_meta


@pytest.mark.parametrize("max_shard_bytes", [5 * 1024**3, 4 * 1024**2])
def test_save_load_round_trip_is_bit_exact(tmp_path, golden_policy, max_shard_bytes):
    golden_policy.vla.save_pretrained(tmp_path, max_shard_bytes=max_shard_bytes)
    sharded = (tmp_path / INDEX_NAME).is_file()
    assert sharded == (max_shard_bytes < 5 * 1024**3)
    if sharded:
        assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    reloaded = OpenVLAModel.from_pretrained(tmp_path)
    assert reloaded.config == golden_policy.vla.config
    assert_same_state(reloaded, golden_policy.vla)


def test_resaving_replaces_the_old_weight_files(tmp_path, golden_policy):
    golden_policy.vla.save_pretrained(tmp_path, max_shard_bytes=4 * 1024**2)
    golden_policy.vla.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def edit_weights(directory: Path, edit) -> None:
    state = load_file(directory / "model.safetensors")
    edit(state)
    save_file(state, directory / "model.safetensors")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("projector.fc2.bias"), r"missing keys: 1 \(projector.fc2.bias\)"),
        (lambda s: s.update({"vla.projector.fc2.bias": s["projector.fc2.bias"].clone()}),
         r"unexpected keys: 1 \(vla.projector.fc2.bias\)"),
        (lambda s: s.update({"projector.fc2.bias": torch.zeros(3)}),
         r"shape mismatches: 1 \(projector.fc2.bias: checkpoint \(3,\) vs model \(64,\)\)"),
    ],
)
def test_mismatched_keys_are_named(published_checkpoint, edit, message):
    edit_weights(published_checkpoint, edit)
    with pytest.raises(ValueError, match=message):
        OpenVLAModel.from_pretrained(published_checkpoint)


def test_missing_files_are_named(published_checkpoint):
    (published_checkpoint / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor model.safetensors.index.json"):
        OpenVLAModel.from_pretrained(published_checkpoint)
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors"}}
    (published_checkpoint / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match="model-00001-of-00002.safetensors"):
        OpenVLAModel.from_pretrained(published_checkpoint)
    (published_checkpoint / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        OpenVLAModel.from_pretrained(published_checkpoint)


def test_component_files_must_be_unique(tmp_path):
    assert find_component_file(tmp_path, "action_head") is None
    for step in (10, 20):
        (tmp_path / f"action_head--{step}_checkpoint.pt").touch()
    with pytest.raises(ValueError, match="2 action_head checkpoints"):
        find_component_file(tmp_path, "action_head")
