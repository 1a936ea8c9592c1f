"""OpenVLAModel reproduces the original OpenVLA-OFT code (golden run) and lays the sequence out as OFT does."""

import pytest
import torch

from rocket_openvla.backbones.openvla.modeling_openvla import action_token_positions

ATOL = 1e-5  # fp32 CPU, as the golden README suggests
NUM_IMAGES, NUM_PATCHES = 2, 256
PROPRIO_POSITION = 1 + NUM_IMAGES * NUM_PATCHES  # 513


def at_positions(logits: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """`[B, L, V]` logits -> `[B, P, V]` at the per-sample positions `[B, P]`."""
    return torch.gather(logits, 1, positions[..., None].expand(-1, -1, logits.shape[-1]))


def golden_forward(policy, inputs, **kwargs):
    proprio_token = policy.proprio_projector(inputs["proprio"]).unsqueeze(1)
    return policy.vla(
        inputs["input_ids"], inputs["attention_mask"], inputs["pixel_values"], labels=inputs["labels"],
        extra_tokens=proprio_token, **kwargs,
    )


@pytest.fixture(scope="module")
def golden_output(golden, golden_policy):
    with torch.no_grad():
        return golden_forward(golden_policy, golden["inputs"], output_hidden_states=True)


def test_hidden_states_match_original(golden, golden_output):
    expected = golden["outputs"]
    assert len(golden_output.hidden_states) == 3  # 2 decoder layers + embeddings
    for k, hidden in enumerate(golden_output.hidden_states):
        torch.testing.assert_close(hidden, expected[f"hidden_states.{k}"], atol=ATOL, rtol=0)
    torch.testing.assert_close(golden_output.last_hidden_state, expected["hidden_states.2"], atol=ATOL, rtol=0)


def test_projector_features_logits_and_loss_match_original(golden, golden_output):
    expected = golden["outputs"]
    torch.testing.assert_close(golden_output.projector_features, expected["projector_features"],
                               atol=ATOL, rtol=0)
    # The fixture keeps the text logits at 4 positions per sample (BOS, the prompt's last token, the first action
    # token, the last position) for 511 vocabulary ids (all action tokens and a spread of others); the loss below
    # covers every labelled position over the whole vocabulary.
    positions, vocab_ids = expected["logits_text.positions"], expected["logits_text.vocab_ids"]
    text_logits = golden_output.logits[:, PROPRIO_POSITION:]
    assert text_logits.shape == (2, 68, 32064)
    torch.testing.assert_close(at_positions(text_logits, positions)[..., vocab_ids], expected["logits_text"],
                               atol=ATOL, rtol=0)
    torch.testing.assert_close(golden_output.loss.reshape(1), expected["loss"], atol=ATOL, rtol=0)


def test_action_hidden_states_match_original(golden, golden_policy, golden_output):
    hidden = golden_policy.vla.action_hidden_states(golden_output, golden["inputs"]["labels"], count=56)
    torch.testing.assert_close(hidden, golden["outputs"]["actions_hidden_states"], atol=ATOL, rtol=0)


def test_sequence_layout_bos_patches_proprio_text(golden, golden_policy, golden_output):
    inputs, embeddings = golden["inputs"], golden_output.hidden_states[0]
    text = golden_policy.vla.get_input_embeddings()(inputs["input_ids"])
    is_action = inputs["labels"] > golden_policy.vla.action_token_begin
    image_tokens = slice(1, 1 + NUM_PATCHES * NUM_IMAGES)

    torch.testing.assert_close(embeddings[:, 0], text[:, 0])  # BOS
    torch.testing.assert_close(embeddings[:, image_tokens], golden_output.projector_features[:, :PROPRIO_POSITION - 1])
    torch.testing.assert_close(embeddings[:, PROPRIO_POSITION], golden_output.projector_features[:, -1])
    torch.testing.assert_close(embeddings[:, PROPRIO_POSITION + 1:], text[:, 1:] * ~is_action[:, 1:, None])
    assert is_action.sum() == 2 * 56 and (embeddings[:, PROPRIO_POSITION + 1:][is_action[:, 1:]] == 0).all()
    assert golden_output.attention_mask[:, :PROPRIO_POSITION + 1].all()
    assert torch.equal(golden_output.attention_mask[:, PROPRIO_POSITION + 1:], inputs["attention_mask"][:, 1:].bool())


def test_cameras_are_camera_major_blocks_of_one_image_each(golden, golden_policy):
    pixels = golden["inputs"]["pixel_values"][:1]
    backbone = golden_policy.vla.vision_backbone
    with torch.no_grad():
        both = backbone(pixels)
        primary, wrist = backbone(pixels[:, :6]), backbone(pixels[:, 6:])
    assert backbone.patch_grid == (16, 16) and both.shape == (1, 2 * NUM_PATCHES, 64 + 48)
    torch.testing.assert_close(both, torch.cat([primary, wrist], dim=1), atol=1e-6, rtol=0)


def test_action_token_positions_follow_labels(golden):
    labels = golden["inputs"]["labels"]
    positions = action_token_positions(labels, action_token_begin=31743, count=56)
    expected = [torch.nonzero(row > 31743).flatten() for row in labels]
    assert torch.equal(positions, torch.stack(expected))


def test_causal_attention_is_not_the_original(golden, make_golden_policy):
    """The OFT checkpoints were trained bidirectionally: a causal LLM gives other hidden states."""
    causal = make_golden_policy(bidirectional_attention=False)
    with torch.no_grad():
        output = golden_forward(causal, golden["inputs"])
    assert (output.last_hidden_state - golden["outputs"]["hidden_states.2"]).abs().max() > 0.1


@pytest.mark.parametrize("channels, message", [(9, "6 per camera"), (3, "6 per camera")])
def test_rejects_pixel_values_without_six_channels_per_image(golden_policy, channels, message):
    pixels = torch.zeros(1, channels, 224, 224)
    with pytest.raises(ValueError, match=message):
        golden_policy.vla.vision_backbone(pixels)


def test_rejects_wrong_image_size(golden_policy):
    with pytest.raises(ValueError, match="224x224"):
        golden_policy.vla.vision_backbone(torch.zeros(1, 6, 112, 112))
