"""OpenVLAPolicy: OFT's training loss and predict_action (golden parity), run directories, bad inputs."""

import dataclasses
import json

import pytest
import torch
from peft import LoraConfig, get_peft_model

from rocket_openvla.backbones.openvla.adapter import lora_target_modules
from rocket_openvla.backbones.openvla.configuration_openvla import PolicySpec
from rocket_openvla.backbones.openvla.policy import OpenVLAPolicy
from rocket_openvla.normalization import FeatureStatistics

ATOL = 1e-5  # fp32 CPU, as the golden README suggests
PROMPT_LENGTH = 11  # BOS + prompt + "▁" of golden sample 0 (its actions start at position 11)


def prompt_of_sample_0(inputs, length=PROMPT_LENGTH):
    """Sample 0's prompt; its state is given normalised, as the original code takes it."""
    return dict(input_ids=inputs["input_ids"][:1, :length], attention_mask=inputs["attention_mask"][:1, :length],
                pixel_values=inputs["pixel_values"][:1], normalized_proprio=inputs["proprio"][:1])


def test_training_loss_matches_original_l1(golden, golden_policy):
    with torch.no_grad():
        output = golden_policy(golden["inputs"])
    torch.testing.assert_close(output.loss.reshape(1), golden["outputs"]["l1_loss"], atol=ATOL, rtol=0)
    assert set(output.metrics) == {"action_l1", "current_action_l1", "next_actions_l1"}
    assert not any(m.requires_grad for m in output.metrics.values())


def test_discrete_training_loss_is_the_original_token_loss(golden, make_golden_policy):
    policy = make_golden_policy(action_head="discrete")
    with torch.no_grad():
        output = policy(golden["inputs"])
    torch.testing.assert_close(output.loss.reshape(1), golden["outputs"]["loss"], atol=ATOL, rtol=0)
    assert 0 <= output.metrics["action_accuracy"] <= 1


@pytest.mark.parametrize("prompt_length", [PROMPT_LENGTH, PROMPT_LENGTH - 1])  # without "▁" it is appended
def test_predict_action_matches_original_l1(golden, golden_policy, prompt_length):
    predicted = golden_policy.predict_action(**prompt_of_sample_0(golden["inputs"], prompt_length))
    expected = golden["outputs"]
    assert predicted.actions.shape == (1, 8, 7)
    torch.testing.assert_close(predicted.actions[0], expected["predict_action.l1.actions"], atol=ATOL, rtol=0)
    torch.testing.assert_close(predicted.actions_hidden_states, expected["predict_action.l1.actions_hidden_states"],
                               atol=ATOL, rtol=0)


def test_predict_action_matches_original_discrete(golden, make_golden_policy):
    predicted = make_golden_policy(action_head="discrete").predict_action(**prompt_of_sample_0(golden["inputs"]))
    torch.testing.assert_close(predicted.actions[0], golden["outputs"]["predict_action.discrete.actions"],
                               atol=ATOL, rtol=0)


def test_predict_action_unnormalises_with_the_dataset_statistics(golden, golden_policy):
    predicted = golden_policy.predict_action(**prompt_of_sample_0(golden["inputs"]))
    action_stats = golden_policy.statistics["tiny_dataset"].action
    low, high, mask = (torch.tensor(a) for a in (action_stats.q01, action_stats.q99, action_stats.mask))
    normalized = predicted.normalized_actions.double()
    manual = torch.where(mask, 0.5 * (normalized + 1) * (high - low + 1e-8) + low, normalized)
    assert not mask.all()  # the gripper dimension passes through
    torch.testing.assert_close(predicted.actions.double(), manual, atol=1e-6, rtol=0)


def test_batched_prompts_of_different_lengths_predict_like_single_ones(golden, golden_policy):
    inputs = golden["inputs"]
    short = prompt_of_sample_0(inputs)
    long_ids = inputs["input_ids"][1:, :8]  # sample 1's prompt ends with "▁" at position 7
    batch = dict(
        input_ids=torch.cat([short["input_ids"], torch.cat([long_ids, torch.zeros(1, 3, dtype=torch.long)], 1)]),
        attention_mask=torch.tensor([[1] * 11, [1] * 8 + [0] * 3]),
        pixel_values=inputs["pixel_values"], normalized_proprio=inputs["proprio"],
    )
    batched = golden_policy.predict_action(**batch).actions
    single = golden_policy.predict_action(long_ids, torch.ones_like(long_ids), inputs["pixel_values"][1:],
                                          normalized_proprio=inputs["proprio"][1:]).actions
    torch.testing.assert_close(batched[0], golden_policy.predict_action(**short).actions[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(batched[1], single[0], atol=ATOL, rtol=0)


def test_predict_action_normalises_a_raw_state_with_the_dataset_statistics(golden, make_golden_policy):
    policy = make_golden_policy()
    # The golden statistics hold a constant (all-zero) state; give the state a real range to normalise over.
    state = FeatureStatistics.from_values(torch.linspace(-3, 5, 101)[:, None].repeat(1, 8).numpy())
    policy.statistics["tiny_dataset"] = dataclasses.replace(policy.statistics["tiny_dataset"], proprio=state)
    normalized = golden["inputs"]["proprio"][:1].clamp(-1, 1)
    raw = state.unnormalize(normalized)
    prompt = prompt_of_sample_0(golden["inputs"])
    from_raw = policy.predict_action(**{**prompt, "normalized_proprio": None}, proprio=raw)
    expected = policy.predict_action(**{**prompt, "normalized_proprio": normalized})
    torch.testing.assert_close(from_raw.actions, expected.actions, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="either proprio .* or normalized_proprio"):
        policy.predict_action(**prompt, proprio=raw)


def test_predict_action_runs_in_eval_mode_and_restores_the_mode(golden, make_golden_policy):
    policy = make_golden_policy().train()
    seen = []
    policy.vla.language_model.model.layers[0].register_forward_pre_hook(
        lambda module, args: seen.append(module.training)
    )
    policy.predict_action(**prompt_of_sample_0(golden["inputs"]))
    assert seen == [False] and policy.training and all(module.training for module in policy.modules())


def test_several_datasets_need_an_unnorm_key(golden, make_golden_policy):
    policy = make_golden_policy()
    policy.statistics["other_dataset"] = policy.statistics["tiny_dataset"]
    prompt = prompt_of_sample_0(golden["inputs"])
    with pytest.raises(ValueError, match=r"unnorm_key is not set .* \['other_dataset', 'tiny_dataset'\]"):
        policy.predict_action(**prompt)
    with pytest.raises(ValueError, match="unnorm_key='nope' has no statistics"):
        policy.predict_action(**prompt, unnorm_key="nope")
    assert policy.predict_action(**prompt, unnorm_key="other_dataset").actions.shape == (1, 8, 7)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.update(pixel_values=torch.cat([b["pixel_values"], b["pixel_values"][:, :6]], 1)),
         r"carry 3 camera images \(18 channels\); this policy takes num_images=2"),
        (lambda b: b.update(pixel_values=b["pixel_values"][:, :10]), "6 channels per camera image"),
        (lambda b: b.pop("proprio"), r"batch lacks \['proprio'\]"),
        (lambda b: b.update(proprio=b["proprio"][:, :7]), r"expected \[2, 8\] \(PolicySpec.proprio_dim\)"),
        (lambda b: b.update(actions=b["actions"][:, :4]), r"\[B, 8, 7\] \(PolicySpec.chunk / action_dim\)"),
    ],
)
def test_bad_batches_are_rejected_with_the_fix(golden, golden_policy, change, message):
    batch = dict(golden["inputs"])
    change(batch)
    with pytest.raises(ValueError, match=message):
        golden_policy(batch)


def write_oft_run_dir(directory, published_checkpoint, policy):
    """What OFT's finetune.py leaves with merge_lora_during_training: merged model + `.pt` heads with DDP prefix."""
    for name in ("config.json", "model.safetensors"):
        (directory / name).write_bytes((published_checkpoint / name).read_bytes())
    for name in ("action_head", "proprio_projector"):
        state = {f"module.{k}": v for k, v in getattr(policy, name).state_dict().items()}
        torch.save(state, directory / f"{name}--150000_checkpoint.pt")
    stats = {"libero_spatial_no_noops": policy.statistics["tiny_dataset"].to_dict()}
    (directory / "dataset_statistics.json").write_text(json.dumps(stats))


def test_loads_an_oft_run_directory(tmp_path, published_checkpoint, golden, golden_policy):
    write_oft_run_dir(tmp_path, published_checkpoint, golden_policy)
    policy = OpenVLAPolicy.from_pretrained(tmp_path)
    assert list(policy.statistics) == ["libero_spatial_no_noops"]
    predicted = policy.predict_action(**prompt_of_sample_0(golden["inputs"]))
    torch.testing.assert_close(predicted.actions[0], golden["outputs"]["predict_action.l1.actions"], atol=ATOL, rtol=0)


def test_run_directory_missing_a_component_is_named(tmp_path, published_checkpoint, golden_policy):
    write_oft_run_dir(tmp_path, published_checkpoint, golden_policy)
    (tmp_path / "proprio_projector--150000_checkpoint.pt").unlink()
    with pytest.raises(FileNotFoundError,
                       match=r"lacks \['proprio_projector--\*.safetensors or proprio_projector--\*_checkpoint.pt'\]"):
        OpenVLAPolicy.from_pretrained(tmp_path)


def test_bare_checkpoint_gets_fresh_heads(published_checkpoint):
    policy = OpenVLAPolicy.from_pretrained(published_checkpoint, spec=PolicySpec(num_images=1, use_proprio=False))
    assert policy.proprio_projector is None and policy.spec.num_images == 1
    assert list(policy.statistics) == ["tiny_dataset"]  # the config's norm_stats


def test_lora_run_directory_round_trips_bit_exactly(tmp_path, published_checkpoint, golden):
    policy = OpenVLAPolicy.from_pretrained(published_checkpoint)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=lora_target_modules(policy.vla), init_lora_weights=False)
    policy.vla = get_peft_model(policy.vla, lora)
    policy.save_pretrained(tmp_path / "run", tag="step7")
    assert (tmp_path / "run" / "lora_adapter" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not list((tmp_path / "run").glob("*.pt"))  # OFT's heads go only beside a full VLA, which OFT can load

    reloaded = OpenVLAPolicy.from_pretrained(tmp_path / "run")  # base = the adapter's recorded base path
    assert reloaded.spec == policy.spec
    state, reloaded_state = policy.state_dict(), reloaded.state_dict()
    assert state.keys() == reloaded_state.keys()
    assert all(torch.equal(state[k], reloaded_state[k]) for k in state)
    prompt = prompt_of_sample_0(golden["inputs"])
    assert torch.equal(policy.eval().predict_action(**prompt).actions, reloaded.predict_action(**prompt).actions)


def test_diffusion_head_trains_and_samples(golden, make_golden_policy):
    policy = make_golden_policy(action_head="diffusion").train()
    output = policy(golden["inputs"])
    output.loss.backward()
    assert set(output.metrics) == {"noise_mse"} and torch.isfinite(output.loss)
    assert policy.noisy_action_projector.fc1.weight.grad.abs().sum() > 0
    assert policy.vla.projector.fc1.weight.grad.abs().sum() > 0
    policy.eval()
    prompt = prompt_of_sample_0(golden["inputs"])
    first, second = (policy.predict_action(**prompt, num_diffusion_steps=2, generator=torch.Generator().manual_seed(0))
                     for _ in range(2))
    assert first.actions.shape == (1, 8, 7)
    assert torch.equal(first.actions, second.actions)
    assert (first.normalized_actions.abs() <= 1).all()  # DDIM clips its clean-sample estimate to [-1, 1]


def test_bfloat16_keeps_the_state_projectors_in_float32_as_oft(golden, make_golden_policy):
    policy = make_golden_policy(action_head="diffusion").set_dtype(torch.bfloat16)
    dtypes = {name: {p.dtype for p in module.parameters()} for name, module in policy.named_children()}
    assert dtypes == {"vla": {torch.bfloat16}, "action_head": {torch.bfloat16},
                      "proprio_projector": {torch.float32}, "noisy_action_projector": {torch.float32}}
    with torch.no_grad():
        assert torch.isfinite(policy.train()(golden["inputs"]).loss)


def test_bfloat16_policy_takes_float32_batches(golden, make_golden_policy):
    policy = make_golden_policy().set_dtype(torch.bfloat16)
    with torch.no_grad():
        loss = policy(golden["inputs"]).loss
    predicted = policy.predict_action(**prompt_of_sample_0(golden["inputs"]))
    assert torch.isfinite(loss) and abs(loss.item() - golden["outputs"]["l1_loss"].item()) < 0.05
    assert predicted.actions.dtype == torch.float32
    torch.testing.assert_close(predicted.actions[0], golden["outputs"]["predict_action.l1.actions"], atol=0.1, rtol=0)
