"""Loading transformers checkpoints strictly: transformers initialises missing weights randomly and only logs it; a
checkpoint that does not fit its model class is an error here, naming what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rocket_openvla.errors import ConfigError, MissingInputError

MODEL_CONFIG_NAME = "config.json"


def has_model_weights(path: Path) -> bool:
    """True when `path` holds a Hugging Face model: `config.json` and `model*.safetensors`."""
    return (path / MODEL_CONFIG_NAME).is_file() and any(path.glob("model*.safetensors"))


def load_pretrained_strict(
    model_class: type, path: Path, dtype: torch.dtype | None = None, model_type: str | None = None, **overrides: Any
) -> nn.Module:
    """`model_class.from_pretrained(path, dtype=dtype, **overrides)`, refusing missing, unexpected or mis-shaped
    weights, and a `config.json` of another `model_type` than the one given."""
    present = {MODEL_CONFIG_NAME: (path / MODEL_CONFIG_NAME).is_file(),
               "model*.safetensors": any(path.glob("model*.safetensors"))}
    missing = [name for name, found in present.items() if not found]
    if missing:
        raise MissingInputError(
            f"checkpoint {path} lacks {missing}; pass a directory in the Hugging Face layout (config.json + "
            "model.safetensors, or sharded with model.safetensors.index.json)"
        )
    found_type = json.loads((path / MODEL_CONFIG_NAME).read_text()).get("model_type")
    if model_type is not None and found_type != model_type:
        raise ConfigError(
            f"checkpoint {path} is a {found_type!r} model but this backbone loads {model_type!r}; pick the "
            "--backbone.type of that checkpoint"
        )
    model, info = model_class.from_pretrained(str(path), dtype=dtype, output_loading_info=True, **overrides)
    problems = {
        name: sorted(info[name]) for name in ("missing_keys", "unexpected_keys", "mismatched_keys") if info[name]
    }
    if problems:
        raise ConfigError(f"checkpoint {path} does not match its config.json: {problems}; pass a complete checkpoint")
    return model
