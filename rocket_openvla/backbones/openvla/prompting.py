"""OpenVLA's prompt (`PurePromptBuilder("openvla")`) and its token layout.

Text OpenVLA trains on (after the tokenizer's BOS):

    "In: What action should the robot take to {instruction.lower()}?\\nOut: " + <action tokens as text> + "</s>"

With Llama-2's tokenizer that is `[<s>, prompt tokens ..., "Out", ":", "▁" (29871), a_0 ... a_{n-1}, </s> (2)]`:
the space after "Out:" becomes the lone word-boundary token "▁", because no action token carries a leading "▁".
At inference the prompt stops at "Out:" and OpenVLA's `predict_action` appends the "▁" itself, so both layouts
agree. Only the n action tokens and `</s>` are supervised; every other label is `IGNORE_INDEX`.

Building the ids by concatenation (instead of re-tokenising the decoded action text, as OpenVLA does) gives the
same ids for Llama-2's tokenizer and never depends on how action text re-tokenises.
"""

from __future__ import annotations

from collections.abc import Sequence

IGNORE_INDEX = -100
PROMPT_TEMPLATE = "In: What action should the robot take to {instruction}?\nOut:"
ACTION_PREFIX_TOKEN = "▁"  # SentencePiece's word boundary, id 29871 in Llama-2


def build_prompt(instruction: str) -> str:
    """The inference prompt for one task, ending at "Out:" (lower-cased instruction, as OpenVLA trains)."""
    return PROMPT_TEMPLATE.format(instruction=instruction.lower())


def with_action_prefix(prompt_ids: Sequence[int], action_prefix_id: int) -> list[int]:
    """`prompt_ids` (BOS + prompt) ending in the "▁" that precedes the first action token (appended if missing)."""
    prompt_ids = list(prompt_ids)
    return prompt_ids if prompt_ids and prompt_ids[-1] == action_prefix_id else [*prompt_ids, action_prefix_id]


def build_training_ids(
    prompt_ids: Sequence[int], action_token_ids: Sequence[int], action_prefix_id: int, eos_token_id: int
) -> tuple[list[int], list[int]]:
    """Input ids and labels of one training sample.

    Args:
        prompt_ids: BOS + the tokenised `build_prompt(...)`.
        action_token_ids: the chunk's action tokens, step-major (`chunk * action_dim` ids).
        action_prefix_id: id of `ACTION_PREFIX_TOKEN`.
        eos_token_id: id of `</s>`.

    Returns:
        `(input_ids [T], labels [T])` with `T = len(prompt ids + "▁") + len(action_token_ids) + 1`; labels copy the
        action tokens and `</s>` and are `IGNORE_INDEX` elsewhere.
    """
    prefix = with_action_prefix(prompt_ids, action_prefix_id)
    target = [*action_token_ids, eos_token_id]
    return [*prefix, *target], [IGNORE_INDEX] * len(prefix) + target
