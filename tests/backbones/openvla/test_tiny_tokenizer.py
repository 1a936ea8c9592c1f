import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from rocket_openvla.backbones.openvla.prompting import build_prompt
from rocket_openvla.backbones.openvla.tiny_tokenizer import build_tiny_tokenizer

TEXTS = [
    build_prompt("Pick up the black bowl between the plate and the ramekin and place it on the plate"),
    build_prompt("put both moka pots on the stove"),
    "Unlisted words, digits 0123 and symbols #%&!",
    "non-ASCII: naïve café 机器人 🤖",
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tiny_tokenizer()


def test_openvla_ids(tokenizer):
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.pad_token_id == 32000
    assert tokenizer.vocab_size == 32000 and len(tokenizer) == 32001  # <PAD> is added on top, as in OpenVLA
    assert tokenizer.convert_tokens_to_ids("▁") == 29871
    assert tokenizer("\n", add_special_tokens=False).input_ids[-1] == 13  # byte fallback <0x0A>, as in Llama-2
    assert tokenizer.padding_side == "right"


def test_action_tokens_are_the_top_256_single_characters(tokenizer):
    action_ids = list(range(31744, 32000))
    text = tokenizer.decode(action_ids)
    assert len(text) == 256 and len(set(text)) == 256
    assert tokenizer(text, add_special_tokens=False).input_ids == [29871, *action_ids]


@pytest.mark.parametrize("text", TEXTS)
def test_every_text_round_trips_with_bos_and_without_unk(tokenizer, text):
    ids = tokenizer(text).input_ids
    assert ids[0] == 1 and tokenizer.unk_token_id not in ids and 2 not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_prompt_words_are_single_tokens(tokenizer):
    tokens = tokenizer.tokenize(build_prompt("place the cream cheese in the bowl"))
    assert tokens[:10] == ["▁In", ":", "▁What", "▁action", "▁should", "▁the", "▁robot", "▁take", "▁to", "▁place"]
    assert tokens[-3:] == ["<0x0A>", "Out", ":"]


def test_save_and_reload_from_a_local_directory(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)

    for reloaded in (AutoTokenizer.from_pretrained(tmp_path), PreTrainedTokenizerFast.from_pretrained(tmp_path)):
        assert (reloaded.bos_token_id, reloaded.eos_token_id, reloaded.pad_token_id) == (1, 2, 32000)
        assert reloaded.vocab_size == 32000 and reloaded.padding_side == "right"
        for text in TEXTS:
            assert reloaded(text).input_ids == tokenizer(text).input_ids
        padded = reloaded(TEXTS[:2], padding=True).input_ids
        assert padded[1][-1] == 32000
