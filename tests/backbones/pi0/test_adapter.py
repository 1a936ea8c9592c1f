"""PI0Adapter on a tiny real PI0: capture = the VLM's `output_hidden_states` on the prefix, image tokens of present
cameras only, absent cameras masked, and ROCKET learning through the VLM's LoRA weights."""

import pytest
import torch

from rocket_openvla.align import RocketConfig, RocketObjective
from rocket_openvla.capture import ResidualCapture
from rocket_openvla.teachers.registry import RandomVGGTConfig, StudentView
from rocket_openvla.training.step import TrainStep

from .helpers import batch_of, tiny_adapter

TEACHER_DIM = 8


def vlm_hidden_states(adapter, batch) -> tuple:
    """`output_hidden_states=True` of the VLM on PI0's prefix, built as PI0 builds it."""
    pi0 = adapter.policy.base_model.model
    embeds = pi0.embed_prefix(batch["input_ids"], batch["pixel_values"], batch["pixel_attention_mask"])
    output = pi0.vlm(
        inputs_embeds=embeds, attention_mask=batch["attention_mask"],
        position_ids=batch["attention_mask"].cumsum(-1) - 1, token_type_ids=torch.zeros_like(embeds[..., 0]),
        output_hidden_states=True,
    )
    return output.hidden_states


@pytest.mark.parametrize("with_lora", [False, True])
def test_capture_equals_the_vlm_hidden_states_on_the_prefix(with_lora):
    adapter = tiny_adapter()
    if with_lora:
        adapter.apply_lora(rank=2, alpha=4, init=False)  # init=False: LoRA B != 0, so LoRA changes the states
    adapter.policy.eval()
    batch = batch_of(adapter, 3, 2)
    indices = list(range(adapter.num_hidden_layers + 1))
    with torch.no_grad(), ResidualCapture(adapter.capture_points(), indices) as capture:
        adapter.policy(batch)
        captured = capture.collect()
        reference = vlm_hidden_states(adapter, batch)
    assert len(reference) == adapter.num_hidden_layers + 1 == 5
    for index in indices:
        assert torch.equal(captured[index], reference[index]), index


def test_image_tokens_are_the_present_cameras_tokens_in_slot_order():
    adapter = tiny_adapter()
    batch = batch_of(adapter, 3, 2)  # pixel_attention_mask [[1, 1, 1], [1, 1, 0]]
    tokens = adapter.image_tokens(batch)
    per_image = 256
    assert tokens.positions.shape == tokens.mask.shape == (2, 3 * per_image)
    assert tokens.mask[0].all() and tokens.mask[1, :2 * per_image].all() and not tokens.mask[1, 2 * per_image:].any()
    # PI0 puts the present cameras' image tokens first: slot s of sample b is its s-th run of image tokens.
    assert torch.equal(tokens.positions[0], torch.arange(3 * per_image))
    assert torch.equal(tokens.positions[1, :2 * per_image], torch.arange(2 * per_image))
    image_token_id = adapter.processor.layout.image_token_id
    assert (batch["input_ids"].gather(1, tokens.positions)[tokens.mask] == image_token_id).all()


def test_a_present_camera_behind_an_absent_one_gets_the_right_run_of_tokens():
    adapter = tiny_adapter()
    batch = batch_of(adapter, 2, 2)
    batch["pixel_attention_mask"][1] = torch.tensor([True, False, True])  # slot 2 present, slot 1 absent
    tokens = adapter.image_tokens(batch)
    assert torch.equal(tokens.positions[1, 2 * 256:], torch.arange(256, 512))  # slot 2 = the 2nd run
    assert tokens.mask[1].tolist() == [True] * 256 + [False] * 256 + [True] * 256


def make_step(adapter, student_layers=(2, 4), teacher_dim=TEACHER_DIM):
    rocket = RocketConfig(student_layers=list(student_layers), teacher_layers=list(range(len(student_layers))),
                          hidden_dim=16)
    objective = RocketObjective(rocket, adapter.hidden_size, teacher_dim)
    return TrainStep(adapter, objective, rocket, list(student_layers)), objective


def test_absent_cameras_contribute_nothing_to_the_alignment():
    torch.manual_seed(0)
    adapter = tiny_adapter()
    step, objective = make_step(adapter)
    batch = batch_of(adapter, 3, 2)
    targets = [torch.randn(2, 3 * 256, TEACHER_DIM) for _ in range(2)]
    garbage = [target.clone() for target in targets]
    for target in garbage:
        target[1, 2 * 256:] = 1e4 * torch.randn(256, TEACHER_DIM)  # sample 1's absent third camera

    losses = []
    for teacher in (targets, garbage):
        torch.manual_seed(1)  # the same flow-matching noise and time
        output = step(batch, teacher)
        losses.append((output.loss, output.metrics["align/loss"]))
    assert torch.isfinite(losses[0][0]) and torch.equal(losses[0][1], losses[1][1])
    torch.testing.assert_close(losses[0][0], losses[1][0], atol=0, rtol=0)


def test_align_gradient_reaches_the_vlm_lora_weights_and_the_align_loss_falls():
    torch.manual_seed(0)
    adapter = tiny_adapter()
    adapter.apply_lora(rank=4, alpha=8)
    batch = batch_of(adapter, 3, 2)
    view = StudentView(adapter.camera_grids, adapter.num_images, adapter.teacher_input_format)
    teacher = RandomVGGTConfig(depth=2).build([0, 1], view, RocketConfig(student_layers=[2, 4], teacher_layers=[0, 1]))
    targets = teacher(adapter.teacher_images(batch))  # [-1, 1] pixels, absent cameras as grey frames
    # The action expert reads only the VLM's key/value cache, so the last VLM layer's MLP is trained by nothing but
    # the alignment of the final hidden state (hidden_states[4]).
    last_mlp = {name: p for name, p in adapter.policy.named_parameters()
                if "language_model.layers.3.mlp" in name and "lora_B" in name}  # lora_A gets none while B = 0
    baseline = TrainStep(adapter, None, RocketConfig(coeff=0.0), [])
    baseline(batch).loss.backward()
    assert last_mlp and all(p.grad is None for p in last_mlp.values())

    step, _ = make_step(adapter, (2, 4), teacher.feature_dim)
    step(batch, targets).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in last_mlp.values())

    optimizer = torch.optim.AdamW([p for p in step.parameters() if p.requires_grad], lr=1e-2)
    align_losses = []
    for _ in range(15):
        optimizer.zero_grad()
        output = step(batch, targets)
        output.loss.backward()
        optimizer.step()
        align_losses.append(output.metrics["align/loss"].item())
    assert align_losses[-1] < 0.8 * align_losses[0], align_losses
