"""OpenVLAConfig reads the published config.json layout, spells out Llama-2-7B, and rejects other backbones."""

import json

import pytest

from rocket_openvla.backbones.openvla.configuration_openvla import OpenVLAConfig
from rocket_openvla.backbones.openvla.tiny import openvla_7b_config, tiny_openvla_config
from tests.fixtures import OPENVLA_OFT_TINY

GOLDEN_CONFIG = OPENVLA_OFT_TINY / "config.json"


def published_config() -> dict:
    return json.loads(GOLDEN_CONFIG.read_text())


def test_reads_the_published_layout_of_the_golden_model():
    config = OpenVLAConfig.from_dict(published_config())
    llama = config.llama_config()
    assert config.timm_model_ids == ("vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224")
    assert (llama.hidden_size, llama.intermediate_size, llama.num_hidden_layers) == (64, 172, 2)
    assert (llama.vocab_size, llama.pad_token_id, llama.rms_norm_eps) == (32064, 32000, 1e-6)
    assert config.tokenizer_vocab_size == 32000
    assert list(config.norm_stats) == ["tiny_dataset"]


def test_7b_defaults_are_llama2_7b():
    """The published 7B text_config only overrides vocab/pad: the rest must be Llama-2-7B (golden README)."""
    llama = openvla_7b_config(text_config={"vocab_size": 32064, "pad_token_id": 32000}).llama_config()
    assert (llama.hidden_size, llama.intermediate_size, llama.num_hidden_layers) == (4096, 11008, 32)
    assert (llama.num_attention_heads, llama.num_key_value_heads, llama.max_position_embeddings) == (32, 32, 2048)
    assert llama.rms_norm_eps == 1e-6 and llama.rope_parameters["rope_theta"] == 10000.0
    assert not llama.tie_word_embeddings


def test_dict_round_trip_keeps_every_field_and_writes_no_remote_code():
    config = tiny_openvla_config(norm_stats=published_config()["norm_stats"], bidirectional_attention=False)
    values = json.loads(config.to_json_string())
    assert "auto_map" not in values and values["model_type"] == "openvla"
    assert OpenVLAConfig.from_dict(values) == config


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("vision_backbone_id", "siglip-vit-so400m", "vision_backbone_id='siglip-vit-so400m' is not supported"),
        ("llm_backbone_id", "mistral-v0.1-7b-pure", "llm_backbone_id='mistral-v0.1-7b-pure'"),
        ("timm_model_ids", ["vit_large_patch14_clip_336.openai", "x"], "timm_model_ids="),
        ("model_type", "prismatic", "model_type='prismatic'"),
        ("attn_implementation", "magic", "attn_implementation='magic'"),
    ],
)
def test_rejects_configs_of_other_architectures(key, value, message):
    with pytest.raises(ValueError, match=message):
        OpenVLAConfig.from_dict({**published_config(), key: value})
