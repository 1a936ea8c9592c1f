"""Compare a loaded state dict with what a model expects, and describe every difference in one message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

MAX_LISTED_KEYS = 8


def format_keys(names: list[str]) -> str:
    """`N (a, b, ... k more)`: a count and the first few names."""
    shown = ", ".join(names[:MAX_LISTED_KEYS])
    more = len(names) - MAX_LISTED_KEYS
    return f"{len(names)} ({shown}{f', ... {more} more' if more > 0 else ''})"


def state_dict_problems(
    expected: Mapping[str, Sequence[int] | torch.Tensor], found: Mapping[str, torch.Tensor], key_prefix: str = ""
) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches of `found` against `expected` (empty when they match).

    Args:
        expected: key -> tensor or shape the model has.
        found: key -> tensor the checkpoint holds.
        key_prefix: prepended to key names in the messages (e.g. the checkpoint's "aggregator.").
    """
    shapes = {key: tuple(value.shape if torch.is_tensor(value) else value) for key, value in expected.items()}
    missing = sorted(key_prefix + key for key in shapes.keys() - found.keys())
    unexpected = sorted(key_prefix + key for key in found.keys() - shapes.keys())
    mismatched = sorted(
        f"{key_prefix}{key}: checkpoint {tuple(found[key].shape)} vs model {shape}"
        for key, shape in shapes.items()
        if key in found and tuple(found[key].shape) != shape
    )
    problems = []
    for label, names in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
        if names:
            problems.append(f"{label}: {format_keys(names)}")
    return problems
