"""Read the ROCKET release's `align_projectors--*.pt` state dict layout.

The release stores an `nn.ModuleList` (pairs) of `nn.ModuleList`s (ensemble members) of `AlignProjector`s,
saved from DDP, so keys look like `module.3.0.fc1.weight`; the input LayerNorm is `vlm_norm`. Load such a file
with `torch.load(path, map_location="cpu", weights_only=True)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from rocket_openvla.errors import ConfigError

_KEY = re.compile(
    r"^(?:module\.)?(\d+)\.(\d+)\."
    r"(fc1\.weight|fc1\.bias|fc2\.weight|fc2\.bias|vlm_norm\.weight|vlm_norm\.bias)$"
)
_RENAME = {"vlm_norm.weight": "norm.weight", "vlm_norm.bias": "norm.bias"}
_REQUIRED = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}


def parse_release_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[tuple[int, int], dict[str, torch.Tensor]]:
    """Group release keys by `(pair, member)`.

    Returns:
        `{(pair, member): {"fc1.weight": [H, Ds], "fc1.bias": [H], "fc2.weight": [Dt, H], "fc2.bias": [Dt],
        optionally "norm.weight"/"norm.bias": [Ds]}}`.

    Raises:
        ValueError: unknown keys, or a projector missing part of its weights.
    """
    projectors: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
    unexpected = []
    for key, value in state_dict.items():
        match = _KEY.match(key)
        if match is None:
            unexpected.append(key)
            continue
        pair, member, name = int(match[1]), int(match[2]), match[3]
        projectors.setdefault((pair, member), {})[_RENAME.get(name, name)] = value
    if unexpected:
        raise ConfigError(
            f"not a ROCKET release projector state dict: unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}; expected keys like '[module.]<pair>.<member>.fc1.weight'"
        )
    for slot, tensors in sorted(projectors.items()):
        missing = sorted(_REQUIRED - tensors.keys())
        if "norm.weight" in tensors and "norm.bias" not in tensors:
            missing.append("vlm_norm.bias")
        if missing:
            raise ConfigError(f"release projector {slot[0]}.{slot[1]} is missing {missing}")
    return projectors
