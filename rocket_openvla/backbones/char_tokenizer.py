"""A character-level tokenizer for tiny test models (PI0, the transformers VLMs): printable ASCII, one token per
character, built offline.

Ids: 0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>, then the printable characters, then `special_tokens` (e.g. a VLM's image
token) in the order given. A tiny model's vocabulary (1000) leaves room for all of them.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

BASE_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}


def build_char_tokenizer(special_tokens: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """The tokenizer; `special_tokens` are added as single, never-split tokens."""
    characters = sorted(set(string.printable) - set("\x0b\x0c\r"))
    vocab = {token: index for index, token in enumerate([*BASE_TOKENS.values(), *characters])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=BASE_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in special_tokens])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **BASE_TOKENS)
