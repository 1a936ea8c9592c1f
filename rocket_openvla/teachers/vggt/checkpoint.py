"""Load a VGGT aggregator strictly from the official ``model.pt`` (or a safetensors export of a state dict).

The official file is a plain ``VGGT().state_dict()``: ``aggregator.*`` (1210 tensors for VGGT-1B) plus the
camera/depth/point/track heads, which are ignored. Every aggregator key must be present with the right shape;
anything else is reported with its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.state_dicts import MAX_LISTED_KEYS, format_keys, state_dict_problems
from rocket_openvla.teachers.vggt.aggregator import VGGTAggregator
from rocket_openvla.teachers.vggt.config import VGGT_1B, VGGTAggregatorConfig

AGGREGATOR_PREFIX = "aggregator."
HEAD_PREFIXES = ("camera_head.", "depth_head.", "point_head.", "track_head.")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """All tensors of a ``.safetensors`` file or a torch-saved state dict (``weights_only``, memory-mapped)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"VGGT checkpoint {path} does not exist; pass the path of facebook/VGGT-1B's model.pt "
            "(or a .safetensors export of its state dict)."
        )
    if path.suffix == ".safetensors":
        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, Mapping) or not all(isinstance(value, Tensor) for value in state.values()):
        found = list(state)[:MAX_LISTED_KEYS] if isinstance(state, Mapping) else type(state).__name__
        raise ConfigError(
            f"VGGT checkpoint {path} is not a plain state dict of tensors (found {found}); save "
            "`model.state_dict()` of the VGGT model, as the official model.pt is."
        )
    return dict(state)


def aggregator_weights(
    state: Mapping[str, Tensor], aggregator: VGGTAggregator, prefix: str = AGGREGATOR_PREFIX, source: str = ""
) -> dict[str, Tensor]:
    """The tensors of a full-model ``state`` that ``aggregator`` takes (prefix stripped, fp32), checked strictly.

    Head keys are skipped; missing keys, unexpected keys and shape mismatches raise one ``ValueError`` naming them.
    """
    expected = {name: tuple(tensor.shape) for name, tensor in aggregator.state_dict().items()}
    weights: dict[str, Tensor] = {}
    unexpected: list[str] = []
    for key, tensor in state.items():
        if key.startswith(HEAD_PREFIXES):
            continue
        name = key[len(prefix) :] if key.startswith(prefix) else None
        if name in expected:
            weights[name] = tensor.float() if tensor.is_floating_point() else tensor
        else:
            unexpected.append(key)
    problems = state_dict_problems(expected, weights, key_prefix=prefix)
    if unexpected:
        problems.append(f"unexpected keys: {format_keys(unexpected)}")
    if problems:
        raise ConfigError(
            f"VGGT checkpoint {source or '<state dict>'} does not fit the aggregator {aggregator.config} with key "
            f"prefix {prefix!r}: " + "; ".join(problems) + ". Pass the config the checkpoint was made with "
            "(VGGT_1B for facebook/VGGT-1B model.pt), prefix='' for an aggregator-only export, or the right file."
        )
    return weights


def load_aggregator(
    path: str | Path, config: VGGTAggregatorConfig = VGGT_1B, prefix: str = AGGREGATOR_PREFIX
) -> VGGTAggregator:
    """Build the aggregator on the meta device and adopt the checkpoint's tensors (no random init, no copy)."""
    with torch.device("meta"):
        aggregator = VGGTAggregator.from_config(config)
    weights = aggregator_weights(read_state_dict(path), aggregator, prefix, source=str(path))
    aggregator.load_state_dict(weights, strict=True, assign=True)
    aggregator.reset_buffers()
    return aggregator
