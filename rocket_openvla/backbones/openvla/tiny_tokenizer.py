"""A small, offline, Llama-2-compatible tokenizer for tests and the CPU quickstart.

It reproduces every id OpenVLA relies on, on a 32000-entry base vocabulary like Llama-2's:

    0 <unk> | 1 <s> (BOS, added by the tokenizer) | 2 </s> (EOS) | 3..258 byte-fallback tokens <0x00>..<0xFF>
    (so "\\n" is 13) | 29871 "▁" (word boundary before the action tokens) | 31744..31999 the 256 action tokens
    | 32000 <PAD> (an added token, outside the base vocabulary, as in OpenVLA)

Text is split like Llama-2 (spaces become "▁", a "▁" is prepended to the text) and encoded by a BPE model whose
merges spell out a fixed word list (the prompt and LIBERO task words) from single characters; any other text falls
back to characters and UTF-8 bytes, so every string tokenises. The remaining ids are unreachable placeholders that
only keep the layout. Action tokens are private-use characters U+E000.. that never occur in ordinary text.
"""

from __future__ import annotations

import string

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

BASE_VOCAB_SIZE = 32000
NUM_ACTION_TOKENS = 256
UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<PAD>"
WORD_BOUNDARY = "▁"
WORD_BOUNDARY_ID = 29871
FIRST_BYTE_ID = 3
ACTION_CHAR_OFFSET = 0xE000
MODEL_MAX_LENGTH = 2048

WORDS = (
    "In What action should the robot take to "
    "pick up put place push open close turn on off and it in into onto of top bottom middle front back left right "
    "next between center black white red yellow blue green brown bowl plate mug cup pot pan frying moka stove "
    "drawer cabinet microwave basket tray rack shelf caddy box book cookie ramekin alphabet soup cream cheese "
    "ketchup tomato sauce butter milk orange juice bbq salad dressing wine bottle chocolate pudding porcelain "
    "wooden flat both them"
).split()


def _action_token(index: int) -> str:
    return chr(ACTION_CHAR_OFFSET + index)


def _word_vocab_and_merges() -> tuple[list[str], list[tuple[str, str]]]:
    """Single characters, then each word's prefixes `▁w`, `▁wo`, ... built by left-to-right merges.

    "Out" follows a newline, not a space, so it is spelled without the boundary marker.
    """
    characters = [WORD_BOUNDARY, *(c for c in string.printable if not c.isspace())]
    vocab, merges = list(characters), []
    for word in [WORD_BOUNDARY + word for word in WORDS] + ["Out"]:
        for end in range(2, len(word) + 1):
            merged = word[:end]
            if merged not in vocab:
                vocab.append(merged)
                merges.append((word[: end - 1], word[end - 1]))
    return vocab, merges


def _base_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    words, merges = _word_vocab_and_merges()
    tokens = [UNK, BOS, EOS, *(f"<0x{byte:02X}>" for byte in range(256))]
    tokens += [token for token in words if token != WORD_BOUNDARY]
    first_action_id = BASE_VOCAB_SIZE - NUM_ACTION_TOKENS
    # Placeholders keep the layout; BPE never produces them (no merge builds them).
    tokens += [f"<unused_{index}>" for index in range(len(tokens), WORD_BOUNDARY_ID)]
    tokens.append(WORD_BOUNDARY)
    tokens += [f"<unused_{index}>" for index in range(len(tokens), first_action_id)]
    # OpenVLA's id for bin b is vocab_size - b, so the top id (31999) holds the lowest bin.
    tokens += [_action_token(index) for index in range(NUM_ACTION_TOKENS)]
    return {token: index for index, token in enumerate(tokens)}, merges


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The tokenizer described in the module docstring, wrapped for transformers (BOS added, right padding)."""
    vocab, merges = _base_vocab()
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True, fuse_unk=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_BOUNDARY, prepend_scheme="first", split=False)
    backend.decoder = decoders.Sequence(
        [decoders.Replace(WORD_BOUNDARY, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in (UNK, BOS, EOS, PAD)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        add_bos_token=True,
        add_eos_token=False,
        padding_side="right",
        model_max_length=MODEL_MAX_LENGTH,
    )
