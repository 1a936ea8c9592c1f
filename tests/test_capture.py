"""ResidualCapture equals transformers' `output_hidden_states=True` on tiny real models."""

import gc
import weakref

import pytest
import torch
import torch.utils.checkpoint
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import (
    GemmaConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    SiglipVisionConfig,
)

from rocket_openvla.capture import CapturePoints, ResidualCapture, find_decoder


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(config)


def tiny_paligemma() -> PaliGemmaForConditionalGeneration:
    torch.manual_seed(0)
    text = GemmaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=1, head_dim=16)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                                image_size=56, patch_size=14)
    config = PaliGemmaConfig(text_config=text, vision_config=vision, projection_dim=64, hidden_size=64,
                             image_token_index=999, vocab_size=1000)
    return PaliGemmaForConditionalGeneration(config)


def paligemma_inputs() -> dict:
    input_ids = torch.tensor([[999] * 16 + [2, 5, 6, 7, 8, 9]] * 2)
    return dict(input_ids=input_ids, pixel_values=torch.randn(2, 3, 56, 56),
                token_type_ids=torch.cat([torch.zeros(2, 20), torch.ones(2, 2)], dim=1).long())


def assert_capture_matches(model: nn.Module, inputs: dict, decoder: nn.Module | None = None) -> None:
    points = CapturePoints.from_decoder(decoder if decoder is not None else find_decoder(model))
    indices = list(range(points.num_states))
    with ResidualCapture(points, indices) as capture:
        output = model(**inputs, output_hidden_states=True)
    states = capture.collect()
    assert len(output.hidden_states) == points.num_states
    for index in indices:
        torch.testing.assert_close(states[index], output.hidden_states[index], atol=0, rtol=0)


def test_llama_all_indices():
    assert_capture_matches(tiny_llama(), dict(input_ids=torch.randint(0, 128, (2, 9))))


def test_paligemma_finds_language_decoder():
    model = tiny_paligemma()
    assert find_decoder(model) is model.model.language_model
    assert_capture_matches(model, paligemma_inputs())


def test_negative_indices_and_subset():
    model = tiny_llama()
    ids = torch.randint(0, 128, (1, 5))
    with ResidualCapture(CapturePoints.from_decoder(find_decoder(model)), [1, -1]) as capture:
        output = model(ids, output_hidden_states=True)
    states = capture.collect()
    assert sorted(states) == [1, 3]
    torch.testing.assert_close(states[3], output.hidden_states[-1])


def test_peft_lora_wrapping_keeps_capture_and_gradients():
    model = tiny_llama()
    points = CapturePoints.from_decoder(find_decoder(model))  # taken before wrapping
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    ids = torch.randint(0, 128, (2, 6))
    with ResidualCapture(points, [2]) as capture:
        output = lora(input_ids=ids, output_hidden_states=True)
    state = capture.collect()[2]
    torch.testing.assert_close(state, output.hidden_states[2])
    with lora.disable_adapter():
        assert not torch.allclose(lora(input_ids=ids, output_hidden_states=True).hidden_states[2], state)
    state.pow(2).mean().backward()
    lora_grads = [p.grad for name, p in lora.named_parameters() if "lora_" in name and "layers.0." in name]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)


def test_gradient_checkpointing_keeps_first_capture():
    model = tiny_llama()
    ids = torch.randint(0, 128, (2, 6))
    reference = model(ids, output_hidden_states=True).hidden_states
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    with ResidualCapture(CapturePoints.from_decoder(find_decoder(model)), [0, 1, 2, 3]) as capture:
        output = model(ids, labels=ids)
        states = dict(capture.states)
        (output.loss + sum(s.mean() for s in states.values())).backward()
        assert all(capture.states[k] is states[k] for k in states)
    for index, state in states.items():
        torch.testing.assert_close(state, reference[index])


class MixtureLayer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.input_layernorm = nn.LayerNorm(dim)
        self.mlp = nn.Linear(dim, dim)


class MixtureDecoder(nn.Module):
    """Calls layer sub-modules directly inside checkpointed regions, like openpi / lerobot pi0 training."""

    def __init__(self, dim: int = 8, depth: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(MixtureLayer(dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, hidden: torch.Tensor) -> list[torch.Tensor]:
        states = [hidden]
        for layer in self.layers:
            hidden = torch.utils.checkpoint.checkpoint(
                lambda h, layer=layer: h + layer.mlp(layer.input_layernorm(h)), hidden, use_reentrant=False
            )
            states.append(hidden)
        states[-1] = self.norm(hidden)
        return states


def test_mixture_model_input_submodule_pre_hooks():
    torch.manual_seed(0)
    decoder = MixtureDecoder()
    hidden = torch.randn(2, 5, 8, requires_grad=True)
    with pytest.raises(RuntimeError, match="input_submodule='input_layernorm'"):
        with ResidualCapture(CapturePoints.from_decoder(decoder), [1]) as blocks_only:
            decoder(hidden)  # the blocks themselves never run
        blocks_only.collect()
    with ResidualCapture(
        CapturePoints.from_decoder(decoder, input_submodule="input_layernorm"), [0, 1, 2, 3]
    ) as capture:
        expected = decoder(hidden)
        states = capture.collect()
        captured = dict(capture.states)
        expected[-1].sum().backward()  # recomputation fires the pre-hooks again
        assert capture.states.keys() == captured.keys()
        assert all(capture.states[k] is captured[k] for k in captured)  # ... but the capture is disarmed
    for index in range(4):
        torch.testing.assert_close(states[index], expected[index])


def test_reset_and_remove():
    model = tiny_llama()
    capture = ResidualCapture(CapturePoints.from_decoder(find_decoder(model)), [2])
    capture.attach()
    first = model(torch.randint(0, 128, (1, 4)), output_hidden_states=True).hidden_states[2]
    torch.testing.assert_close(capture.collect()[2], first)
    capture.reset()
    second = model(torch.randint(0, 128, (1, 6)), output_hidden_states=True).hidden_states[2]
    torch.testing.assert_close(capture.collect()[2], second)
    capture.remove()
    capture.reset()
    model(torch.randint(0, 128, (1, 4)))
    assert capture.states == {}


def test_collect_hands_the_states_over():
    """After `collect()` the capture holds no state: they die with the caller's last reference."""
    model = tiny_llama()
    with torch.no_grad(), ResidualCapture(CapturePoints.from_decoder(find_decoder(model)), [1, 2]) as capture:
        model(torch.randint(0, 128, (1, 4)))
        states = capture.collect()
    assert capture.states == {} and sorted(states) == [1, 2]
    alive = [weakref.ref(state) for state in states.values()]
    del states
    gc.collect()
    assert [ref() for ref in alive] == [None, None]


def test_find_decoder_error():
    with pytest.raises(ValueError, match="explicitly"):
        find_decoder(nn.Linear(2, 2))
