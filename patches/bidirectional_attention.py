"""Bidirectional (non-causal) self-attention for stock transformers decoders (Llama, Qwen2, Gemma, ...), switched on
per model and reversible.

OpenVLA-OFT decodes a whole action chunk in one pass and was trained with a transformers fork whose Llama SDPA
attention lets every token attend to every non-padding token. Stock
transformers >= 5.2 builds a bidirectional padding mask instead of a causal one when the model's config carries
`is_causal = False`, and its attention kernels read the same flag. This patch sets that flag on the config of every
decoder inside a given module (a transformers model with `layers`, e.g. `LlamaModel`) and on each of its attention
modules (so direct calls of a decoder layer without a mask are non-causal too), and restores the previous values on
`remove()`. OpenVLA-OFT uses it on Llama; the VLM backbones on their language model (whatever the family).

Padding stays masked: query i attends key j iff `attention_mask[j]`, exactly the fork's "last causal row repeated".
Works for the eager, sdpa, flash-attention and flex backends and through peft/DDP wrappers (the config and attention
objects are shared, not copied). Not meant for KV-cached generation.

    handle = enable_bidirectional_attention(vla.language_model)   # ... handle.remove()
    with bidirectional_attention(decoder): ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import nn

_MISSING = object()


def _require_is_causal_support() -> None:
    from transformers.utils.generic import TransformersKwargs

    if "is_causal" not in TransformersKwargs.__annotations__:
        import transformers

        raise RuntimeError(
            f"transformers=={transformers.__version__} does not honour `config.is_causal`, so attention cannot "
            "be made bidirectional; install transformers>=5.2"
        )


def _decoders(model: nn.Module) -> list[nn.Module]:
    """The transformers decoder models inside `model`: PreTrainedModels that own their `layers` (a ModuleList)."""
    from transformers import PreTrainedModel

    found = [m for m in model.modules()
             if isinstance(m, PreTrainedModel) and isinstance(getattr(m, "layers", None), nn.ModuleList)]
    if not found:
        raise TypeError(
            f"{type(model).__name__} contains no transformers decoder model (a PreTrainedModel with `layers`); the "
            "bidirectional patch applies to transformers language models"
        )
    return found


def _attention_modules(decoder: nn.Module) -> list[nn.Module]:
    return [m for m in decoder.layers.modules() if isinstance(getattr(m, "is_causal", None), bool)]


@dataclass
class BidirectionalAttentionHandle:
    """Undo record of one `enable_bidirectional_attention` call; `remove()` restores what was there before."""

    _previous: list[tuple[object, object]] = field(default_factory=list)  # (config or attention module, old is_causal)
    _removed: bool = False

    def remove(self) -> None:
        if self._removed:
            return
        for owner, value in reversed(self._previous):
            if value is _MISSING:
                delattr(owner, "is_causal")
            else:
                owner.is_causal = value
        self._removed = True


def enable_bidirectional_attention(model: nn.Module) -> BidirectionalAttentionHandle:
    """Make every transformers decoder inside `model` attend bidirectionally (padding stays masked) until
    `remove()`."""
    _require_is_causal_support()
    handle = BidirectionalAttentionHandle()
    for decoder in _decoders(model):
        owners = [decoder.config, *_attention_modules(decoder)]
        for owner in owners:
            handle._previous.append((owner, getattr(owner, "is_causal", _MISSING)))
            owner.is_causal = False
    return handle


@contextmanager
def bidirectional_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Context manager form of `enable_bidirectional_attention`."""
    handle = enable_bidirectional_attention(model)
    try:
        yield model
    finally:
        handle.remove()


def is_bidirectional(model: nn.Module) -> bool:
    """True when every transformers decoder inside `model` currently attends bidirectionally."""
    return all(getattr(decoder.config, "is_causal", True) is False for decoder in _decoders(model))
