"""PI0Policy: predict_action through PI0's sampler, run directories (LoRA and merged), and refused inputs."""

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rocket_openvla.backbones.pi0.backbone_config import PI0BackboneConfig
from rocket_openvla.backbones.pi0.configuration_pi0 import PI0PolicySpec
from rocket_openvla.backbones.pi0.policy import PI0Policy
from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.normalization import DatasetStatistics, FeatureStatistics

from .helpers import batch_of, tiny_adapter


def statistics() -> dict[str, DatasetStatistics]:
    values = np.random.default_rng(0).uniform(-3, 5, (200, 8))
    action = FeatureStatistics.from_values(values[:, :7], mask=np.array([True] * 6 + [False]))
    proprio = FeatureStatistics.from_values(values)
    return {"synthetic_libero_no_noops": DatasetStatistics(action=action, proprio=proprio)}


def inference_inputs(batch: dict) -> dict:
    return {key: batch[key] for key in ("input_ids", "attention_mask", "pixel_values", "pixel_attention_mask")}


@pytest.fixture
def adapter():
    adapter = tiny_adapter()
    adapter.set_dataset_statistics(statistics())
    return adapter


def test_predict_action_samples_with_pi0_and_unnormalises(adapter):
    policy, batch = adapter.policy.train(), batch_of(adapter, 2, 2)
    stats = policy.statistics["synthetic_libero_no_noops"]
    normalized_state = torch.rand(2, 8) * 2 - 1
    raw_state = stats.proprio.unnormalize(normalized_state)
    first = policy.predict_action(**inference_inputs(batch), proprio=raw_state, num_steps=3,
                                  generator=torch.Generator().manual_seed(0))
    again = policy.predict_action(**inference_inputs(batch), normalized_proprio=normalized_state, num_steps=3,
                                  generator=torch.Generator().manual_seed(0))
    assert first.actions.shape == (2, 8, 7) and policy.training  # eval inside, the mode restored
    torch.testing.assert_close(first.actions, again.actions, atol=1e-5, rtol=0)
    torch.testing.assert_close(first.actions, stats.action.unnormalize(first.normalized_actions), atol=1e-6, rtol=0)
    # the gripper dimension is not normalised, so it passes through
    torch.testing.assert_close(first.actions[..., 6], first.normalized_actions[..., 6])


def test_predict_action_matches_the_model_sampler(adapter):
    policy, batch = adapter.policy.eval(), batch_of(adapter, 2)
    normalized_state = torch.zeros(1, 8)
    predicted = policy.predict_action(**inference_inputs(batch), normalized_proprio=normalized_state, num_steps=2,
                                      generator=torch.Generator().manual_seed(3))
    noise = torch.randn((1, 8, 32), generator=torch.Generator().manual_seed(3))
    sampled = policy.base_model.sample_actions(state=torch.zeros(1, 32), noise=noise, num_steps=2,
                                               **inference_inputs(batch))
    torch.testing.assert_close(predicted.normalized_actions, sampled[..., :7])


def test_lora_run_directory_round_trips(adapter, tmp_path):
    adapter.policy.base_model.save_pretrained(tmp_path / "base")  # the checkpoint the run starts from
    adapter.processor.tokenizer.save_pretrained(str(tmp_path / "base"))
    adapter = PI0BackboneConfig(pretrained=str(tmp_path / "base")).build()  # records its base path
    adapter.set_dataset_statistics(statistics())
    adapter.apply_lora(rank=2, alpha=4, init=False)
    with torch.no_grad():  # the action projections train fully: give them values of their own
        adapter.policy.model.base_model.model.action_out_proj.modules_to_save.default.bias.add_(0.5)
    adapter.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / "lora_adapter" / "adapter_model.safetensors").is_file()

    rebuilt = PI0BackboneConfig(pretrained=str(tmp_path / "run")).build()  # base: the adapter's recorded path
    assert rebuilt.has_lora and rebuilt.policy.statistics.keys() == adapter.policy.statistics.keys()
    state, rebuilt_state = adapter.policy.state_dict(), rebuilt.policy.state_dict()
    assert state.keys() == rebuilt_state.keys() and all(torch.equal(state[k], rebuilt_state[k]) for k in state)
    assert any(p.requires_grad for n, p in rebuilt.policy.named_parameters() if ".lora_" in n)  # training resumes

    adapter.merge_lora()
    adapter.save_pretrained(tmp_path / "merged")
    merged = PI0Policy.from_pretrained(tmp_path / "merged")
    batch = batch_of(adapter, 2)
    inputs = dict(**inference_inputs(batch), normalized_proprio=torch.zeros(1, 8), num_steps=2)
    expected = rebuilt.policy.predict_action(**inputs, generator=torch.Generator().manual_seed(0)).actions
    actual = merged.predict_action(**inputs, generator=torch.Generator().manual_seed(0)).actions
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_chunk_size_comes_from_the_spec_and_is_saved(tmp_path):
    adapter = tiny_adapter(policy=PI0PolicySpec(chunk_size=5))
    assert adapter.action_chunk == 5 and adapter.policy.base_model.config.chunk_size == 5
    adapter.save_pretrained(tmp_path)
    assert PI0Policy.from_pretrained(tmp_path).base_model.config.chunk_size == 5


def test_missing_files_and_oversized_dims_are_named(adapter, tmp_path):
    adapter.save_pretrained(tmp_path / "full")
    (tmp_path / "full" / "model.safetensors").unlink()
    with pytest.raises(MissingInputError, match=r"lacks \['model\*.safetensors'\]"):
        PI0Policy.from_pretrained(tmp_path / "full")
    adapter.save_pretrained(tmp_path / "partial")
    weights = load_file(tmp_path / "partial" / "model.safetensors")
    del weights["action_out_proj.weight"]
    save_file(weights, tmp_path / "partial" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ConfigError, match=r"missing_keys.*action_out_proj.weight"):
        PI0Policy.from_pretrained(tmp_path / "partial")  # transformers would initialise it randomly
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingInputError, match="holds no PI0 model"):
        PI0Policy.from_pretrained(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"action_dim=40 .* exceed the model's max_action_dim=32"):
        PI0Policy(adapter.policy.base_model, dataclasses.replace(adapter.policy.spec, action_dim=40))
    adapter.save_pretrained(tmp_path / "no_tokenizer")
    for file in (tmp_path / "no_tokenizer").glob("tokenizer*"):
        file.unlink()
    with pytest.raises(MissingInputError, match="--backbone.tokenizer"):
        PI0BackboneConfig(pretrained=str(tmp_path / "no_tokenizer")).build()
