"""The bidirectional-attention patch on tiny stock transformers decoders (Llama, Qwen2): on, off, padding, backends,
peft."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rocket_openvla.patches.bidirectional_attention import (
    bidirectional_attention,
    enable_bidirectional_attention,
    is_bidirectional,
)

SEQ = 7


def tiny_llama(attn_implementation: str = "sdpa") -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM._from_config(config, attn_implementation=attn_implementation).eval()


def last_states(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states[-1]


def ids_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences that differ only in their last token."""
    ids = torch.randint(0, 64, (2, SEQ), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 64
    return ids, changed


def earlier_change(model: nn.Module, attention_mask: torch.Tensor | None = None) -> float:
    ids, changed = ids_pair()
    delta = last_states(model, ids, attention_mask) - last_states(model, changed, attention_mask)
    return delta[:, :-1].abs().max().item()


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_later_token_reaches_earlier_tokens_only_when_bidirectional(attn_implementation):
    model = tiny_llama(attn_implementation)
    ids, _ = ids_pair()
    causal_states = last_states(model, ids)
    assert earlier_change(model) == 0.0

    handle = enable_bidirectional_attention(model)
    assert is_bidirectional(model)
    assert earlier_change(model) > 1e-3

    handle.remove()
    assert not is_bidirectional(model)
    assert earlier_change(model) == 0.0
    assert torch.equal(last_states(model, ids), causal_states)


def test_backends_agree_when_bidirectional():
    ids, _ = ids_pair()
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, -2:] = 0
    states = {}
    for backend in ("sdpa", "eager"):
        model = tiny_llama(backend)
        with bidirectional_attention(model):
            states[backend] = last_states(model, ids, mask)
    torch.testing.assert_close(states["sdpa"][0], states["eager"][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(states["sdpa"][1, :-2], states["eager"][1, :-2], atol=1e-5, rtol=0)


def test_padding_stays_masked():
    """Every query sees exactly the non-padding keys, as in the OFT transformers fork."""
    model = tiny_llama()
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[:, -1] = 0
    with bidirectional_attention(model):
        assert earlier_change(model, mask) == 0.0
        mask[:, -1] = 1
        assert earlier_change(model, mask) > 1e-3


def test_context_manager_restores_previous_state_and_nests():
    model = tiny_llama()
    assert not hasattr(model.config, "is_causal")
    with bidirectional_attention(model):
        inner = enable_bidirectional_attention(model)
        inner.remove()
        assert is_bidirectional(model)  # the outer switch is still on
        inner.remove()  # removing twice is harmless
        assert is_bidirectional(model)
    assert not is_bidirectional(model)
    assert not hasattr(model.config, "is_causal")
    assert all(layer.self_attn.is_causal for layer in model.model.layers)


def test_survives_peft_wrapping():
    model = tiny_llama()
    enable_bidirectional_attention(model)
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert is_bidirectional(wrapped)
    ids, changed = ids_pair()
    with torch.no_grad():
        delta = wrapped(input_ids=ids).logits - wrapped(input_ids=changed).logits
    assert delta[:, :-1].abs().max() > 1e-3


def test_other_decoders_too():
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = Qwen2ForCausalLM._from_config(config, attn_implementation="sdpa").eval()
    assert earlier_change(model) == 0.0
    with bidirectional_attention(model):
        assert earlier_change(model) > 1e-3
    assert earlier_change(model) == 0.0


def test_rejects_models_without_a_decoder():
    with pytest.raises(TypeError, match="no transformers decoder model"):
        enable_bidirectional_attention(nn.Linear(2, 2))
