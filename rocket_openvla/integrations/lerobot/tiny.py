"""Tiny lerobot policies with the real architecture, for tests and the CPU quickstart.

lerobot has no small variant: pi0 / pi0.5 accept only the Gemma variants "gemma_2b" (VLM) and "gemma_300m" (action
expert), build a full SigLIP-So400m vision tower and 257152-row vocabularies, and SmolVLA reads its VLM's config and
processor from the Hub. Inside `tiny_lerobot_models(policy_type)` the builders lerobot's modeling module looks up
are swapped for tiny ones (the configs keep their valid names, so a saved tiny policy reloads inside the same block):
    pi0 / pi05  VLM: Gemma 64 wide, 4 blocks; expert: 32 wide, 4 blocks (same depth, head dim 16, 1 KV head: the
                expert attends to the VLM's keys/values; 8 heads, which lerobot hard-codes); SigLIP 32 wide, 2
                blocks; vocabularies of 1024 rows (images are embedded directly, so no image token id is needed)
    smolvla     SmolVLM with a Llama text model 64 wide, 6 blocks (lerobot keeps `num_vlm_layers`), SigLIP 32 wide,
                2 blocks, 16 px patches, pixel shuffle 2; the processor only provides the two special token ids
Everything is restored when the block ends.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

TINY_GEMMA = {
    "gemma_2b": dict(width=64, depth=4, mlp_dim=128, num_heads=8, num_kv_heads=1, head_dim=16),  # the VLM
    "gemma_300m": dict(width=32, depth=4, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=16),  # the expert
}
TINY_SIGLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
TINY_VOCAB = 1024
TINY_SMOLVLM = dict(
    text_config=dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=1000),
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       image_size=128, patch_size=16),
    scale_factor=2, image_token_id=999,
)
TINY_SMOLVLM_SPECIAL_IDS = dict(fake_image_token_id=997, global_image_token_id=998)
TINY_NUM_VLM_LAYERS = 4  # SmolVLA keeps the first 4 of the 6 blocks
TINY_IMAGE_SIZE = {"pi0": 56, "pi05": 56, "smolvla": 128}  # 4 x 4 image tokens per camera


@contextlib.contextmanager
def tiny_lerobot_models(policy_type: str) -> Iterator[None]:
    """Within the block, lerobot builds tiny `policy_type` models (module docstring)."""
    if policy_type == "smolvla":
        module = importlib.import_module("lerobot.policies.smolvla.smolvlm_with_expert")
        replacements = {"AutoConfig": _TinySmolVLMConfig, "AutoProcessor": _TinySmolVLMProcessor}
    else:
        module = importlib.import_module(f"lerobot.policies.{policy_type}.modeling_{policy_type}")
        replacements = _tiny_pi_builders(module)
    originals = {name: getattr(module, name) for name in replacements}
    try:
        for name, value in replacements.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in originals.items():
            setattr(module, name, value)


def _tiny_pi_builders(module: Any) -> dict[str, Any]:
    gemma_config, paligemma, expert = (module.get_gemma_config, module.PaliGemmaForConditionalGenerationWithPiGemma,
                                       module.PiGemmaForCausalLM)

    def tiny_gemma_config(variant: str) -> Any:
        return module.GemmaConfig(**TINY_GEMMA[variant]) if variant in TINY_GEMMA else gemma_config(variant)

    def tiny_paligemma(config: Any) -> Any:
        for name, value in TINY_SIGLIP.items():
            setattr(config.vision_config, name, value)
        config.vision_config.projection_dim = config.projection_dim = config.text_config.hidden_size
        config.text_config.vocab_size = TINY_VOCAB
        return paligemma(config)

    def tiny_expert(config: Any) -> Any:
        config.vocab_size = TINY_VOCAB
        return expert(config)

    return {"get_gemma_config": tiny_gemma_config, "PaliGemmaForConditionalGenerationWithPiGemma": tiny_paligemma,
            "PiGemmaForCausalLM": tiny_expert}


class _TinySmolVLMConfig:
    @staticmethod
    def from_pretrained(name: str, **kwargs: Any) -> Any:
        from transformers import SmolVLMConfig

        return SmolVLMConfig(**TINY_SMOLVLM)


class _TinySmolVLMProcessor:
    @staticmethod
    def from_pretrained(name: str, **kwargs: Any) -> SimpleNamespace:
        return SimpleNamespace(tokenizer=SimpleNamespace(**TINY_SMOLVLM_SPECIAL_IDS))
