"""OpenVLAAdapter: capture equals `output_hidden_states`, token layout, LoRA placement, save -> rebuild."""

import json

import pytest
import torch

from rocket_openvla.backbones.openvla.backbone_config import OpenVLABackboneConfig
from rocket_openvla.backbones.openvla.configuration_openvla import PolicySpec
from rocket_openvla.backbones.openvla.processing_openvla import PREPROCESSOR_CONFIG_NAME, ImageNormalization
from rocket_openvla.capture import ResidualCapture
from tests.fixtures import OPENVLA_OFT_TINY

from .helpers import reference_hidden_states

GOLDEN_CONFIG = OPENVLA_OFT_TINY / "config.json"


@pytest.fixture
def adapter(golden):
    """The tiny adapter (the golden architecture) with the golden weights."""
    adapter = OpenVLABackboneConfig().build()
    adapter.policy.load_state_dict(golden["weights"], strict=True)
    return adapter


@pytest.mark.parametrize("with_lora", [False, True])
def test_capture_during_the_policy_forward_equals_output_hidden_states(adapter, golden, with_lora):
    if with_lora:
        adapter.apply_lora(rank=2, alpha=4, init=False)  # init=False: non-zero LoRA B, so LoRA changes the states
    adapter.policy.eval()
    batch = golden["inputs"]
    indices = list(range(adapter.num_hidden_layers + 1))
    with torch.no_grad(), ResidualCapture(adapter.capture_points(), indices) as capture:
        adapter.policy(batch)
        captured = capture.collect()
        reference = reference_hidden_states(adapter, batch)
    assert len(reference.hidden_states) == adapter.num_hidden_layers + 1 == 3
    for k in indices:
        assert torch.equal(captured[k], reference.hidden_states[k])
    lora_changed = (reference.hidden_states[-1] - golden["outputs"]["hidden_states.2"]).abs().max() > 1e-3
    assert lora_changed == with_lora


def test_image_tokens_then_proprio_token(adapter, golden):
    tokens = adapter.image_tokens(golden["inputs"])
    start, count = 1, 256 * adapter.num_images
    assert torch.equal(tokens.positions, torch.arange(start, start + count).expand(2, -1)) and tokens.mask.all()
    assert adapter.camera_grids == ((16, 16), (16, 16)) and adapter.hidden_size == 64
    with torch.no_grad():
        output = reference_hidden_states(adapter, golden["inputs"])
        proprio_token = adapter.policy.proprio_projector(golden["inputs"]["proprio"])
    embeddings = output.hidden_states[0]
    torch.testing.assert_close(embeddings[:, start:start + count], output.projector_features[:, :count])
    torch.testing.assert_close(embeddings[:, start + count], proprio_token)


def test_one_camera_config(golden):
    adapter = OpenVLABackboneConfig(policy=PolicySpec(num_images=1)).build()
    assert adapter.image_tokens(golden["inputs"]).positions.shape == (2, 256) and adapter.camera_grids == ((16, 16),)
    with pytest.raises(ValueError, match="carry 2 camera images"):
        adapter.policy(golden["inputs"])


def test_lora_covers_vla_linears_only_and_every_trainable_weight_learns(adapter, golden):
    adapter.apply_lora(rank=2, alpha=4, init=False)
    trainable = {name for name, p in adapter.policy.named_parameters() if p.requires_grad}
    lora_modules = {name.split(".lora_")[0] for name in trainable if ".lora_" in name}
    assert all(".lora_" in name for name in trainable if name.startswith("vla."))
    for part in ("featurizer.blocks.0.attn.qkv", "fused_featurizer.blocks.1.mlp.fc2", "projector.fc1",
                 "layers.1.self_attn.o_proj", "layers.0.mlp.down_proj"):
        assert any(name.endswith(part) for name in lora_modules), part
    for never_run in ("lm_head", "blocks.2.", "attn_pool"):
        assert not any(never_run in name for name in lora_modules), never_run
    assert {n for n in trainable if not n.startswith("vla.")} == {
        n for n, _ in adapter.policy.named_parameters() if n.startswith(("action_head.", "proprio_projector."))
    }

    adapter.policy.train()
    adapter.policy(golden["inputs"]).loss.backward()
    without_grad = [n for n, p in adapter.policy.named_parameters() if p.requires_grad and p.grad is None]
    assert without_grad == []  # DDP needs no find_unused_parameters
    with pytest.raises(RuntimeError, match="already carries a LoRA adapter"):
        adapter.apply_lora(rank=2, alpha=4)


def test_save_pretrained_and_rebuild_from_the_run_directory(adapter, golden, tmp_path):
    adapter.policy.vla.save_pretrained(tmp_path / "base")  # the VLA the run starts from
    adapter.apply_lora(rank=2, alpha=4, init=False)
    adapter.save_pretrained(tmp_path / "run", tag="step3")
    assert (tmp_path / "run" / "action_head--step3.safetensors").is_file()

    with pytest.raises(FileNotFoundError, match="holds only a LoRA adapter"):
        OpenVLABackboneConfig(pretrained=str(tmp_path / "run")).build()  # a random base records no path
    rebuilt = OpenVLABackboneConfig(pretrained=str(tmp_path / "run"), base=str(tmp_path / "base")).build()

    assert rebuilt.has_lora and rebuilt.processor.tokenizer.vocab_size == 32000
    assert any(p.requires_grad for n, p in rebuilt.policy.named_parameters() if ".lora_" in n)  # training resumes
    state, rebuilt_state = adapter.policy.state_dict(), rebuilt.policy.state_dict()
    assert state.keys() == rebuilt_state.keys()
    assert all(torch.equal(state[k], rebuilt_state[k]) for k in state)
    with torch.no_grad():
        assert torch.equal(adapter.policy.eval()(golden["inputs"]).loss, rebuilt.policy.eval()(golden["inputs"]).loss)


def test_gradient_checkpointing_keeps_capture_and_gradients(adapter, golden):
    adapter.apply_lora(rank=2, alpha=4, init=False)
    adapter.policy.train()
    indices = [1, -1]
    results = []
    for checkpointing in (False, True):
        if checkpointing:
            adapter.gradient_checkpointing_enable()
        adapter.policy.zero_grad()
        with ResidualCapture(adapter.capture_points(), indices) as capture:
            loss = adapter.policy(golden["inputs"]).loss
            states = capture.collect()
        (loss + sum(s.square().mean() for s in states.values())).backward()
        grads = {n: p.grad.clone() for n, p in adapter.policy.named_parameters() if p.requires_grad}
        results.append((states, grads))
    (states, grads), (gc_states, gc_grads) = results
    assert all(torch.allclose(states[k], gc_states[k], atol=1e-6) for k in states)
    assert grads.keys() == gc_grads.keys()
    assert all(torch.allclose(grads[n], gc_grads[n], atol=1e-5, rtol=1e-4) for n in grads)


def test_dataset_statistics_are_attached_saved_and_used(adapter, golden, tmp_path):
    statistics = json.loads(GOLDEN_CONFIG.read_text())["norm_stats"]  # the JSON schema the data pipeline yields
    adapter.set_dataset_statistics({"libero_goal_no_noops": statistics["tiny_dataset"]})
    adapter.save_pretrained(tmp_path)
    assert list(json.loads((tmp_path / "dataset_statistics.json").read_text())) == ["libero_goal_no_noops"]
    inputs = golden["inputs"]
    predicted = adapter.policy.eval().predict_action(inputs["input_ids"][:1, :11], inputs["attention_mask"][:1, :11],
                                                     inputs["pixel_values"][:1],
                                                     normalized_proprio=inputs["proprio"][:1])
    torch.testing.assert_close(predicted.actions[0], golden["outputs"]["predict_action.l1.actions"], atol=1e-5, rtol=0)


def test_image_normalisation_comes_from_the_checkpoint_and_is_saved_with_the_policy(adapter, tmp_path):
    adapter.policy.vla.save_pretrained(tmp_path / "base")
    adapter.processor.tokenizer.save_pretrained(str(tmp_path / "base"))
    assert adapter.processor.normalization == ImageNormalization()  # no file: openvla-7b's published values
    assert ImageNormalization.from_pretrained(tmp_path / "base") is None
    custom = ImageNormalization(((0.4, 0.5, 0.6), (0.1, 0.2, 0.3)), ((0.2, 0.25, 0.3), (0.6, 0.7, 0.8)))
    custom.save_pretrained(tmp_path / "base")

    rebuilt = OpenVLABackboneConfig(pretrained=str(tmp_path / "base")).build()
    assert rebuilt.processor.normalization == custom
    assert rebuilt.pixel_normalization == (custom.means[0], custom.stds[0])  # what the teacher inverts
    rebuilt.save_pretrained(tmp_path / "policy")
    assert ImageNormalization.from_pretrained(tmp_path / "policy") == custom
    assert json.loads((tmp_path / "policy" / PREPROCESSOR_CONFIG_NAME).read_text())["stds"][1] == [0.6, 0.7, 0.8]
