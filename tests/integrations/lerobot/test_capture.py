"""Capture on lerobot's pi0 / pi0.5 / SmolVLA: the states recorded during lerobot's own training forward (which never
calls the decoder blocks) equal `hidden_states` of an explicit block-by-block reference forward of the prefix, with
and without lerobot's gradient checkpointing, whose recompute re-fires the hooks in backward."""

import pytest

from .helpers import SKIP_REASON, batch_of, tiny_options

pytest.importorskip("lerobot", reason=SKIP_REASON)

import torch  # noqa: E402
from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d  # noqa: E402

from rocket_openvla.capture import ResidualCapture  # noqa: E402
from rocket_openvla.integrations.lerobot import layout  # noqa: E402

CASES = [("pi0", False), ("pi0", True), ("pi05", False), ("pi05", True), ("smolvla", False)]


def prefix_inputs(policy, batch):
    """The prefix embeddings, additive attention mask `[B, 1, L, L]` and positions lerobot's training forward uses."""
    images, image_masks = layout.student_images(policy, batch)
    images, image_masks = list(images.unbind(1)), list(image_masks.unbind(1))
    tokens, token_mask = batch["observation.language.tokens"], batch["observation.language.attention_mask"]
    if layout.policy_type(policy) == "smolvla":
        state = policy.prepare_state(batch)
        embeddings, pad_mask, att_mask = policy.model.embed_prefix(images, image_masks, tokens, token_mask, state=state)
    else:
        embeddings, pad_mask, att_mask = policy.model.embed_prefix(images, image_masks, tokens, token_mask)
    attention = prepare_attention_masks_4d(make_att_2d_masks(pad_mask, att_mask))
    return embeddings, attention, torch.cumsum(pad_mask, dim=1) - 1, pad_mask


@torch.no_grad()
def reference_hidden_states(policy, batch) -> tuple[list[torch.Tensor], torch.Tensor]:
    """hidden_states[0..n] of the prefix: the language model's decoder blocks called one after the other (eager
    attention), then its final norm; and the `[B, L]` mask of the real (not padding) prefix tokens."""
    model = layout.language_model(policy)
    hidden, attention, positions, real = prefix_inputs(policy, batch)
    previous = model.config._attn_implementation
    model.config._attn_implementation = "eager"
    try:
        rotary = model.rotary_emb(hidden, positions)
        states = [hidden]
        for block in model.layers:
            hidden = block(hidden, attention_mask=attention, position_ids=positions, position_embeddings=rotary)
            states.append(hidden)
        final = model.norm(hidden)
    finally:
        model.config._attn_implementation = previous
    states[-1] = final[0] if isinstance(final, tuple) else final
    return states, real


@pytest.fixture(scope="module", params=CASES, ids=[f"{kind}{'-gc' if gc else ''}" for kind, gc in CASES])
def case(request):
    kind, checkpointing = request.param
    adapter = tiny_options(kind, gradient_checkpointing=checkpointing).build()
    policy = adapter.lerobot_policy
    if kind != "smolvla":  # lerobot's SmolVLA has no gradient checkpointing
        assert policy.model.gradient_checkpointing_enabled is checkpointing
    return adapter, policy, batch_of(adapter, 2)


def test_captured_states_equal_a_reference_forward_of_the_prefix(case):
    adapter, policy, batch = case
    n = adapter.num_hidden_layers
    policy.train()
    with ResidualCapture(adapter.capture_points(), list(range(n + 1))) as capture:
        loss, _ = policy.forward(batch)
        captured = capture.collect()
    reference, real = reference_hidden_states(policy, batch)
    assert len(reference) == n + 1 == len(captured)
    assert not real.all()  # the empty camera and the language padding: attention-masked rows, never aligned
    for index in range(n + 1):
        assert captured[index].shape == reference[index].shape
        torch.testing.assert_close(captured[index][real], reference[index][real], atol=2e-5, rtol=1e-4,
                                   msg=lambda message: f"hidden_states[{index}]: {message}")
    assert captured[1].shape[:2] == reference[0].shape[:2] and torch.isfinite(loss)
    assert not torch.equal(captured[1], captured[2])  # distinct blocks, not one tensor seen twice


def test_checkpointing_refires_hooks_in_backward_and_the_first_capture_is_kept(case):
    adapter, policy, batch = case
    checkpointing = getattr(policy.model, "gradient_checkpointing_enabled", False)
    calls = []
    counter = layout.language_model(policy).layers[1].input_layernorm.register_forward_pre_hook(
        lambda module, args: calls.append(args[0]))
    policy.train()
    try:
        with ResidualCapture(adapter.capture_points(), [1, -1]) as capture:
            loss, _ = policy.forward(batch)
            first = dict(capture.states)  # still armed: the backward recompute may record again
            assert len(calls) == 1
            (loss + first[1].square().mean() + first[adapter.num_hidden_layers].square().mean()).backward()
            kept = dict(capture.states)
    finally:
        counter.remove()
    assert len(calls) > 1 if checkpointing else len(calls) == 1
    assert all(kept[index] is first[index] for index in first)  # re-fired hooks did not replace the forward's
    first_block = layout.language_model(policy).layers[0].self_attn.q_proj.weight
    assert first_block.grad is not None and first_block.grad.abs().sum() > 0
    policy.zero_grad(set_to_none=True)
