"""`LeRobotAdapter` on tiny lerobot pi0 / pi0.5 / SmolVLA: image tokens where lerobot's prefix holds each camera's
patches, absent cameras masked out of the loss, LoRA on the VLM's language model, and the ROCKET loss falling on a
fixed batch with its gradient in the VLM's LoRA weights."""

import pytest

from .helpers import POLICY_TYPES, SKIP_REASON, batch_of, tiny_options

pytest.importorskip("lerobot", reason=SKIP_REASON)

import torch  # noqa: E402

from rocket_openvla.align import RocketConfig, RocketObjective, gather_tokens  # noqa: E402
from rocket_openvla.backbones.char_tokenizer import build_char_tokenizer  # noqa: E402
from rocket_openvla.integrations.lerobot import layout  # noqa: E402
from rocket_openvla.integrations.lerobot.adapter import wrap_lerobot_policy  # noqa: E402
from rocket_openvla.integrations.lerobot.loading import lerobot_config, policy_class  # noqa: E402
from rocket_openvla.integrations.lerobot.tiny import tiny_lerobot_models  # noqa: E402
from rocket_openvla.training.step import TrainStep  # noqa: E402

TEACHER_DIM = 24


@pytest.fixture(scope="module", params=POLICY_TYPES)
def adapter(request):
    return tiny_options(request.param).build()


def image_embeddings(policy, batch):
    """`[B, slots, n, D]` the vision tower's tokens of each slot, as lerobot scales them into the prefix."""
    images, _ = layout.student_images(policy, batch)
    if layout.policy_type(policy) == "smolvla":
        tokens = [policy.model.vlm_with_expert.embed_image(image) for image in images.unbind(1)]
        return torch.stack(tokens, dim=1) * tokens[0].shape[-1] ** 0.5
    return torch.stack([policy.model.paligemma_with_expert.embed_image(image) for image in images.unbind(1)], dim=1)


def prefix_embeddings(policy, batch):
    images, masks = layout.student_images(policy, batch)
    arguments = [list(images.unbind(1)), list(masks.unbind(1)), batch["observation.language.tokens"],
                 batch["observation.language.attention_mask"]]
    if layout.policy_type(policy) == "smolvla":
        return policy.model.embed_prefix(*arguments, state=policy.prepare_state(batch))[0]
    return policy.model.embed_prefix(*arguments)[0]


@torch.no_grad()
def test_image_tokens_are_where_lerobot_puts_each_cameras_patches(adapter):
    policy, batch = adapter.lerobot_policy, batch_of(adapter)
    tokens = adapter.image_tokens(batch)
    slots, (rows, cols) = adapter.num_images, adapter.camera_grids[0]
    assert slots == 3 and (rows, cols) == (4, 4)
    assert tokens.positions.shape == tokens.mask.shape == (2, slots * rows * cols)
    prefix = prefix_embeddings(policy, batch)
    located = prefix.gather(1, tokens.positions[..., None].expand(-1, -1, prefix.shape[-1]))
    torch.testing.assert_close(located, image_embeddings(policy, batch).flatten(1, 2))
    # the two data cameras are present, the empty camera slot (appended last) is not
    assert tokens.mask[:, : 2 * rows * cols].all() and not tokens.mask[:, 2 * rows * cols:].any()


@torch.no_grad()
def test_smolvla_special_image_tokens_and_per_sample_padding_masks():
    options = tiny_options("smolvla")
    config = lerobot_config(options)
    config.add_image_special_tokens = True
    with tiny_lerobot_models("smolvla"):
        policy = policy_class("smolvla")(config)  # built from a lerobot config, then wrapped
    adapter = wrap_lerobot_policy(policy, build_char_tokenizer())
    assert adapter.processor.layout.cameras == ("observation.images.image", "observation.images.wrist_image")
    batch = batch_of(adapter)
    batch["observation.images.wrist_image_padding_mask"] = torch.tensor([True, False])
    positions, mask = layout.image_tokens(policy, batch)
    assert positions[0, :3].tolist() == [2, 3, 4] and positions[0, 16].item() == 16 + 3 + 2
    prefix = prefix_embeddings(policy, batch)
    located = prefix.gather(1, positions[..., None].expand(-1, -1, prefix.shape[-1]))
    torch.testing.assert_close(located, image_embeddings(policy, batch).flatten(1, 2))
    _, lerobot_masks = layout.student_images(policy, batch)  # lerobot's own camera masks
    assert torch.equal(layout.slot_masks(policy, batch), lerobot_masks)
    assert lerobot_masks.tolist() == [[True, True, False], [True, False, False]]
    assert mask[1, 16:32].logical_not().all() and mask[0, 16:32].all()


def test_teacher_images_are_the_student_cameras_in_unit_range(adapter):
    batch = batch_of(adapter)
    images = adapter.teacher_images(batch)
    side = images.shape[-1]
    assert images.shape == (2, 3, 3, side, side)
    torch.testing.assert_close(images[:, 0], batch["observation.images.image"])
    torch.testing.assert_close(images[:, 1], batch["observation.images.wrist_image"])
    assert images[:, 2].abs().max() == 0  # the empty camera: black


def test_lora_targets_cover_the_vlm_language_model_and_the_expert(adapter):
    policy = adapter.lerobot_policy
    targets = adapter.lora_target_modules(policy)
    prefix = {"pi0": "model.paligemma_with_expert.paligemma.model.language_model.layers.",
              "pi05": "model.paligemma_with_expert.paligemma.model.language_model.layers.",
              "smolvla": "model.vlm_with_expert.vlm.model.text_model.layers."}[policy.name]
    for block in range(adapter.num_hidden_layers):
        for projection in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
            assert f"{prefix}{block}.{projection}" in targets
    assert any(expert in name for name in targets for expert in ("gemma_expert.", "lm_expert."))
    assert not any("lm_head" in name for name in targets)
    vision = any("vision" in name for name in targets)
    assert vision is not policy.config.freeze_vision_encoder  # SmolVLA freezes its vision encoder by default
    assert set(adapter.lora_modules_to_save) <= {f"model.{name}" for name, _ in policy.model.named_children()}


def rocket_step(adapter, student_layers):
    config = RocketConfig(student_layers=student_layers, teacher_layers=list(range(len(student_layers))), coeff=1.0)
    objective = RocketObjective(config, adapter.hidden_size, TEACHER_DIM)
    return TrainStep(adapter, objective, config, config.resolve_pairs(adapter.num_hidden_layers + 1, 24)[0])


def test_absent_cameras_contribute_nothing():
    adapter = tiny_options("pi05").build()
    step = rocket_step(adapter, [1, 3])
    batch = batch_of(adapter)
    tokens = adapter.image_tokens(batch)
    targets = [torch.randn(2, tokens.positions.shape[1], TEACHER_DIM) for _ in range(2)]
    absent = ~tokens.mask  # the empty camera slot
    changed = [target.clone() for target in targets]
    for target in changed:
        target[absent] = torch.randn_like(target[absent]) * 100

    def align_loss(targets):
        torch.manual_seed(0)
        return step(batch, targets).metrics["align/loss"]

    torch.testing.assert_close(align_loss(changed), align_loss(targets))
    leaf = [target.clone().requires_grad_(True) for target in targets]
    torch.manual_seed(0)
    step(batch, leaf).loss.backward()
    assert all(target.grad[absent].abs().max() == 0 and target.grad[~absent].abs().max() > 0 for target in leaf)


def lora_gradients(step, where: str) -> list[torch.Tensor | None]:
    return [p.grad for name, p in step.named_parameters() if "lora_" in name and where in name]


@pytest.mark.parametrize("policy_type", POLICY_TYPES)
def test_align_loss_falls_on_a_fixed_batch_and_reaches_the_vlm_lora(policy_type):
    adapter = tiny_options(policy_type).build()
    adapter.apply_lora(rank=4, alpha=8)
    n = adapter.num_hidden_layers
    step = rocket_step(adapter, [1, 2, n])  # n included: the last block's MLP learns only from it
    batch = batch_of(adapter)
    tokens = adapter.image_tokens(batch)
    generator = torch.Generator().manual_seed(0)
    targets = [torch.randn(2, tokens.positions.shape[1], TEACHER_DIM, generator=generator) for _ in range(3)]
    step.train()

    # the alignment term alone: its gradient reaches the VLM's LoRA weights, not the action expert's
    step.capture.reset()
    step.policy(batch)
    states = step.capture.collect()
    student = [gather_tokens(states[layer], tokens.positions) for layer in step.student_layers]
    step.objective(student, targets, tokens.mask).loss.backward()
    smolvla = policy_type == "smolvla"
    language_model, action_expert = ("text_model.layers", "lm_expert.") if smolvla else ("language_model.layers",
                                                                                         "gemma_expert.")
    vlm, expert = lora_gradients(step, language_model), lora_gradients(step, action_expert)
    assert vlm and expert and any(grad is not None and grad.abs().sum() > 0 for grad in vlm)
    assert all(grad is None or grad.abs().sum() == 0 for grad in expert)

    optimizer = torch.optim.AdamW([p for p in step.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(10):  # the whole training step: action loss + align loss
        optimizer.zero_grad(set_to_none=True)
        output = step(batch, targets)
        output.loss.backward()
        optimizer.step()
        losses.append(output.metrics["align/loss"].item())
    assert losses[-1] < 0.93 * losses[0], losses
