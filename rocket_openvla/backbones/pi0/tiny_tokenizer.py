"""A character-level tokenizer for the tiny PI0 (tests, CPU quickstart): printable ASCII, one token per character.

Ids: 0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>, then the printable characters. The tiny PI0's vocabulary (1000) leaves room;
the image token id lies outside it, as PaliGemma's does.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}


def build_tiny_pi0_tokenizer() -> PreTrainedTokenizerFast:
    characters = sorted(set(string.printable) - set("\x0b\x0c\r"))
    vocab = {token: index for index, token in enumerate([*SPECIAL_TOKENS.values(), *characters])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
