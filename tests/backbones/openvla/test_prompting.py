import numpy as np
import pytest

from rocket_openvla.backbones.openvla.action_tokenizer import ActionTokenizer
from rocket_openvla.backbones.openvla.prompting import (
    IGNORE_INDEX,
    build_prompt,
    build_training_ids,
    with_action_prefix,
)
from rocket_openvla.backbones.openvla.tiny_tokenizer import build_tiny_tokenizer

LLAMA_WORD_BOUNDARY_ID, EOS_ID, PAD_ID = 29871, 2, 32000
NUM_ACTION_TOKENS = 56


def test_prompt_format():
    assert build_prompt("Put the Bowl on the Plate") == (
        "In: What action should the robot take to put the bowl on the plate?\nOut:"
    )


def test_training_layout_supervises_only_actions_and_eos():
    input_ids, labels = build_training_ids([1, 10, 11, 12], [31900, 31901, 31902], 29871, 2)
    assert input_ids == [1, 10, 11, 12, 29871, 31900, 31901, 31902, 2]
    assert labels == [IGNORE_INDEX] * 5 + [31900, 31901, 31902, 2]


def test_action_prefix_is_appended_once():
    assert with_action_prefix([1, 10], 29871) == [1, 10, 29871]
    assert with_action_prefix([1, 10, 29871], 29871) == [1, 10, 29871]


@pytest.mark.parametrize("sample", [0, 1])
def test_layout_matches_the_golden_openvla_batch(golden, sample):
    """The golden inputs (conftest.py) follow OpenVLA's layout: prompt, "▁", 56 action tokens, </s>, padding."""
    inputs = golden["inputs"]
    input_ids, labels = inputs["input_ids"][sample].tolist(), inputs["labels"][sample].tolist()
    length = len(input_ids) - input_ids.count(PAD_ID)
    action_start = input_ids.index(LLAMA_WORD_BOUNDARY_ID) + 1
    prompt_ids = input_ids[: action_start - 1]
    action_ids = input_ids[action_start : action_start + NUM_ACTION_TOKENS]

    ours = build_training_ids(prompt_ids, action_ids, LLAMA_WORD_BOUNDARY_ID, EOS_ID)

    assert ours == (input_ids[:length], labels[:length])


def test_concatenated_ids_equal_openvlas_tokenisation_of_the_full_text():
    """OpenVLA tokenises `prompt + " " + action text + "</s>"`; building ids by concatenation gives the same ids."""
    tokenizer = build_tiny_tokenizer()
    action_tokenizer = ActionTokenizer.from_tokenizer(tokenizer)
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 7))
    prompt = build_prompt("pick up the cream cheese and place it in the basket")
    openvla_text = prompt + " " + action_tokenizer.encode_to_string(actions, tokenizer) + tokenizer.eos_token

    input_ids, labels = build_training_ids(
        tokenizer(prompt).input_ids,
        action_tokenizer.encode(actions).reshape(-1).tolist(),
        tokenizer.convert_tokens_to_ids("▁"),
        tokenizer.eos_token_id,
    )

    assert input_ids == tokenizer(openvla_text).input_ids
    # OpenVLA's rule: labels[: -(len(action text) + 1)] = IGNORE_INDEX.
    expected_labels = list(input_ids)
    expected_labels[: -(NUM_ACTION_TOKENS + 1)] = [IGNORE_INDEX] * (len(input_ids) - NUM_ACTION_TOKENS - 1)
    assert labels == expected_labels
