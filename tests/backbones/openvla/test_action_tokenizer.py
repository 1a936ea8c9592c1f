import numpy as np
import pytest
import torch

from rocket_openvla.backbones.openvla.action_tokenizer import ActionTokenizer
from rocket_openvla.backbones.openvla.tiny_tokenizer import build_tiny_tokenizer

VOCAB, BINS = 32000, 256


@pytest.fixture(scope="module")
def action_tokenizer() -> ActionTokenizer:
    return ActionTokenizer(vocab_size=VOCAB, n_bins=BINS)


def sample_actions() -> np.ndarray:
    """`[N, 7]` float64: every bin edge, its neighbours, values outside [-1, 1] and random values."""
    edges = np.linspace(-1, 1, BINS)
    special = np.concatenate([edges, np.nextafter(edges, -2), np.nextafter(edges, 2), [-3.0, -1.0001, 1.0001, 5.0]])
    random = np.random.default_rng(0).uniform(-1.2, 1.2, 4002)
    return np.concatenate([special, random]).reshape(-1, 7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_encode_follows_openvla_digitize_rule(action_tokenizer, dtype):
    actions = sample_actions().astype(dtype)
    expected = VOCAB - np.digitize(np.clip(actions, -1.0, 1.0), np.linspace(-1, 1, BINS))

    np.testing.assert_array_equal(action_tokenizer.encode(actions), expected)
    torch_ids = action_tokenizer.encode(torch.from_numpy(actions))
    assert torch_ids.dtype == torch.int64
    np.testing.assert_array_equal(torch_ids.numpy(), expected)


def test_token_ids_stay_in_the_top_256_ids(action_tokenizer):
    ids = action_tokenizer.encode(sample_actions())
    assert ids.min() == VOCAB - BINS and ids.max() == VOCAB - 1
    assert action_tokenizer.action_token_begin_idx == VOCAB - BINS - 1
    assert action_tokenizer.is_action_token(ids).all()
    assert not action_tokenizer.is_action_token(np.array([VOCAB - BINS - 1, VOCAB, 2])).any()


def test_edge_rules(action_tokenizer):
    encode = action_tokenizer.encode
    assert encode(np.array([-1.0]))[0] == VOCAB - 1  # lowest value -> highest id
    assert encode(np.array([1.0]))[0] == VOCAB - BINS  # max_action falls in the extra top bucket
    assert encode(np.array([7.0]))[0] == encode(np.array([1.0]))[0]
    assert encode(np.array([-7.0]))[0] == encode(np.array([-1.0]))[0]
    edge = np.linspace(-1, 1, BINS)[100]
    assert encode(np.array([edge]))[0] == VOCAB - 101  # a value on an edge belongs to the bin above it


def test_decode_returns_bin_centers_and_clips_out_of_range_ids(action_tokenizer):
    centers = action_tokenizer.bin_centers
    assert centers.shape == (BINS - 1,)
    assert action_tokenizer.decode(np.array([VOCAB - 1]))[0] == centers[0]
    # The top bucket (value == +1) and every id below the action range decode to the last center; ids at or above
    # vocab_size decode to the first one.
    np.testing.assert_array_equal(action_tokenizer.decode(np.array([VOCAB - BINS, 5, 31000])), centers[[-1, -1, -1]])
    np.testing.assert_array_equal(action_tokenizer.decode(np.array([VOCAB, VOCAB + 40])), centers[[0, 0]])
    torch_values = action_tokenizer.decode(torch.tensor([VOCAB - 1, 5, VOCAB + 1]))
    assert torch_values.dtype == torch.float32
    np.testing.assert_allclose(torch_values.numpy(), centers[[0, -1, 0]], rtol=1e-7)


def test_round_trip_error_is_at_most_half_a_bin(action_tokenizer):
    actions = np.clip(sample_actions(), -1, 1)
    recovered = action_tokenizer.decode(action_tokenizer.encode(actions))
    half_bin = 1.0 / (BINS - 1)
    assert np.abs(recovered - actions).max() <= half_bin + 1e-6


def test_string_form_is_one_character_per_action_token():
    tokenizer = build_tiny_tokenizer()
    action_tokenizer = ActionTokenizer.from_tokenizer(tokenizer)
    actions = np.random.default_rng(1).uniform(-1, 1, (8, 7)).astype(np.float32)

    text = action_tokenizer.encode_to_string(actions, tokenizer)

    ids = action_tokenizer.encode(actions).reshape(-1).tolist()
    assert action_tokenizer.vocab_size == VOCAB  # the base vocabulary, without <PAD>
    assert len(text) == len(ids)  # OpenVLA sizes its label mask with len(text)
    word_boundary = tokenizer.convert_tokens_to_ids("▁")
    assert tokenizer(text, add_special_tokens=False).input_ids == [word_boundary, *ids]


def test_rejects_a_vocabulary_smaller_than_the_bins():
    with pytest.raises(ValueError, match="n_bins < vocab_size"):
        ActionTokenizer(vocab_size=100, n_bins=256)
