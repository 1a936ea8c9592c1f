"""Size presets of transformers' PI0 for a random model: "tiny" (tests, CPU quickstart) and "base" (PI0's own
defaults: PaliGemma 2B VLM + Gemma 300M action expert, 18 layers each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PI0Config

# The action expert reads the VLM's per-layer key/value cache: both need the same depth, KV heads and head dim.
TINY_TEXT = dict(model_type="gemma", hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=1, head_dim=16, vocab_size=1000)
TINY_VISION = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, image_size=224, patch_size=14, vision_use_head=False)  # 16 x 16 tokens
TINY_EXPERT = dict(model_type="gemma", hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=16)
TINY_IMAGE_TOKEN_ID = 1000  # out of the vocabulary, as PI0's 257152: its embedding is replaced by image features


def tiny_pi0_config(**overrides: Any) -> PI0Config:
    """A 0.3M-parameter PI0 with the real architecture (every size key given: sub-configs do not inherit PI0's)."""
    from transformers import PI0Config

    vlm = dict(model_type="paligemma", text_config=TINY_TEXT, vision_config=TINY_VISION, projection_dim=64,
               hidden_size=64, image_token_id=TINY_IMAGE_TOKEN_ID, vocab_size=TINY_TEXT["vocab_size"])
    values = dict(vlm_config=vlm, dit_config=TINY_EXPERT, chunk_size=8, max_state_dim=32, max_action_dim=32)
    return PI0Config(**{**values, **overrides})


def base_pi0_config(**overrides: Any) -> PI0Config:
    from transformers import PI0Config

    return PI0Config(**overrides)


SIZE_PRESETS: dict[str, Callable[..., PI0Config]] = {"tiny": tiny_pi0_config, "base": base_pi0_config}
