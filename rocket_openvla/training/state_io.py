"""Save nested training state (optimizer, scheduler, RNG states) as safetensors + JSON, never pickle.

A tree of dicts, lists, tuples, tensors, numpy arrays and JSON scalars is split into its tensors
(`<name>.safetensors`) and a JSON skeleton (`<name>.json`) that records the structure exactly: dict keys keep
their type (optimizer state is keyed by int), tuples stay tuples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from rocket_openvla.files import save_safetensors, write_text


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {"__dict__": [[key, _encode(item, tensors)] for key, item in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item, tensors) for item in value]}
    if isinstance(value, list):
        return [_encode(item, tensors) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} in a training-state tree")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if "__tuple__" in value:
        return tuple(_decode(item, tensors) for item in value["__tuple__"])
    return {key: _decode(item, tensors) for key, item in value["__dict__"]}


def save_state_tree(tree: Any, directory: Path, name: str) -> None:
    """Write `tree` as `directory/<name>.json` + `directory/<name>.safetensors`."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(tree, tensors)
    save_safetensors(tensors, directory / f"{name}.safetensors")
    write_text(directory / f"{name}.json", json.dumps(skeleton))


def load_state_tree(directory: Path, name: str) -> Any:
    """Read a tree written by `save_state_tree`, with tensors on the CPU."""
    tensors = load_file(str(directory / f"{name}.safetensors"))
    return _decode(json.loads((directory / f"{name}.json").read_text()), tensors)
