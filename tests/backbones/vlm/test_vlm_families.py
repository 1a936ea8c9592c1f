"""Every registered transformers VLM family as a ROCKET student (tiny configs of the real model classes): capture,
image-token positions, the action head, LoRA gradients of the alignment, save -> load -> predict_action."""

import json

import pytest
import torch

from rocket_openvla.align import RocketConfig, RocketObjective
from rocket_openvla.backbones import BackboneConfig
from rocket_openvla.capture import ResidualCapture
from rocket_openvla.errors import ConfigError
from rocket_openvla.normalization import DatasetStatistics, FeatureStatistics
from rocket_openvla.training.step import TrainStep

from .helpers import FAMILIES, batch_of, raw_sample, tiny_adapter

TEACHER_DIM = 8


@pytest.fixture(params=list(FAMILIES), scope="module")
def family(request) -> str:
    return request.param


def test_capture_equals_the_language_models_hidden_states(family):
    adapter = tiny_adapter(family)
    adapter.apply_lora(rank=2, alpha=4, init=False)  # LoRA B != 0: the adapters change the states
    policy, batch = adapter.policy.eval(), batch_of(adapter)
    indices = list(range(adapter.num_hidden_layers + 1))
    with torch.no_grad(), ResidualCapture(adapter.capture_points(), indices) as capture:
        policy(batch)
        captured = capture.collect()
        reference = policy.vlm_outputs(batch, batch["state"], output_hidden_states=True).hidden_states
    assert len(reference) == adapter.num_hidden_layers + 1
    for index in indices:
        assert torch.equal(captured[index], reference[index]), index


def test_aligned_positions_are_each_cameras_image_tokens_in_order(family):
    adapter = tiny_adapter(family)
    batch = batch_of(adapter)
    tokens = adapter.image_tokens(batch)
    counts = [gh * gw for gh, gw in adapter.camera_grids]
    assert tokens.positions.shape == (2, sum(counts)) and tokens.mask.all()
    image_token_id = adapter.processor.image_token_id
    is_image = batch["input_ids"] == image_token_id
    for row in range(2):
        expected = torch.nonzero(is_image[row]).flatten()
        assert torch.equal(tokens.positions[row], expected)  # every image token, in sequence order
    # camera c's tokens are one contiguous block (its grid, row-major), after camera c - 1's
    blocks = torch.split(tokens.positions[0], counts)
    assert all((block.diff() == 1).all() for block in blocks)
    assert all(later[0] > earlier[-1] for earlier, later in zip(blocks, blocks[1:]))


def test_the_action_head_learns_a_fixed_batch(family):
    torch.manual_seed(0)
    adapter = tiny_adapter(family)
    adapter.apply_lora(rank=4, alpha=8)
    policy, batch = adapter.policy.train(), batch_of(adapter)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = policy(batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def lora_gradients(adapter, batch, targets, coeff: float) -> dict[str, torch.Tensor]:
    rocket = RocketConfig(student_layers=[2], teacher_layers=[0], hidden_dim=16, coeff=coeff)
    torch.manual_seed(3)
    objective = RocketObjective(rocket, adapter.hidden_size, TEACHER_DIM) if coeff else None
    step = TrainStep(adapter, objective, rocket, [2] if coeff else [])
    adapter.policy.zero_grad()
    step(batch, targets if coeff else None).loss.backward()
    if step.capture is not None:
        step.capture.remove()
    return {name: p.grad.clone() for name, p in adapter.policy.named_parameters()
            if ".lora_B" in name and p.grad is not None}


def test_the_alignment_gradient_reaches_the_adapters_of_the_layers_below_the_aligned_one(family):
    torch.manual_seed(0)
    adapter = tiny_adapter(family)
    adapter.apply_lora(rank=4, alpha=8)
    batch = batch_of(adapter)
    targets = [torch.randn(2, sum(gh * gw for gh, gw in adapter.camera_grids), TEACHER_DIM)]
    with_alignment, without = lora_gradients(adapter, batch, targets, 0.5), lora_gradients(adapter, batch, None, 0.0)
    decoder_names = [name for name in with_alignment if ".layers." in name and "vision" not in name
                     and "visual" not in name]
    assert decoder_names
    for name in decoder_names:
        layer = int(name.split(".layers.")[1].split(".")[0])
        changed = not torch.allclose(with_alignment[name], without[name], atol=1e-9, rtol=0)
        assert changed == (layer < 2), name  # hidden_states[2] is the output of blocks 0 and 1


def statistics() -> dict[str, DatasetStatistics]:
    values = torch.linspace(-3, 5, 200)[:, None].repeat(1, 8).numpy()
    return {"synthetic_libero_no_noops": DatasetStatistics(
        action=FeatureStatistics.from_values(values[:, :7]), proprio=FeatureStatistics.from_values(values))}


def test_save_load_predict_action_gives_the_same_actions(family, tmp_path):
    adapter = tiny_adapter(family)
    adapter.set_dataset_statistics(statistics())
    adapter.policy.vlm.save_pretrained(tmp_path / "base")  # the checkpoint a run starts from
    adapter.processor.save_pretrained(tmp_path / "base")
    config_class = BackboneConfig.get_choice_class(family)
    started = config_class(pretrained=str(tmp_path / "base"), policy=adapter.policy.spec).build()
    started.set_dataset_statistics(statistics())
    started.apply_lora(rank=2, alpha=4, init=False)
    started.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / "lora_adapter" / "adapter_model.safetensors").is_file()

    reloaded = config_class(pretrained=str(tmp_path / "run")).build()
    assert reloaded.has_lora and json.loads((tmp_path / "run" / "policy_config.json").read_text())["chunk"] == 8
    batch = batch_of(started, with_actions=False)
    raw_state = torch.rand(2, 8)
    expected = started.policy.predict_action(batch, proprio=raw_state).actions
    actual = reloaded.policy.predict_action(batch_of(reloaded, with_actions=False), proprio=raw_state).actions
    assert expected.shape == (2, 8, 7)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def test_bad_inputs_name_the_problem(family, tmp_path):
    adapter = tiny_adapter(family)
    with pytest.raises(ValueError, match=r"takes 2 camera images"):
        adapter.processor(raw_sample(num_cameras=3))
    adapter.policy.vlm.save_pretrained(tmp_path / "vlm")
    model_type = BackboneConfig.get_choice_class(family)().family().model_type
    with pytest.raises(ConfigError, match=f"is a '{model_type}' model but this backbone loads 'pi0'"):
        BackboneConfig.get_choice_class("pi0")(pretrained=str(tmp_path / "vlm")).build()
