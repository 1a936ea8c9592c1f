"""Checkpoint files of OpenVLA models and OFT runs: the Hugging Face safetensors layout, OFT's component files,
strict key checks that name what is wrong. Nothing here builds a model.

Layouts read and written:
    <dir>/config.json + model.safetensors                                   (one file)
    <dir>/config.json + model-0000k-of-0000n.safetensors + model.safetensors.index.json   (sharded, as openvla-7b)
    <dir>/<component>--<tag>_checkpoint.pt           OFT (torch pickle, DDP `module.` prefix; read weights-only)
    <dir>/<component>--<tag>_checkpoint.safetensors  ours (same names, safetensors)
Every file is written under a temporary name and renamed (`rocket_openvla.files`), so a crash never leaves a
half-written checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

from rocket_openvla.backbones.action_heads import load_oft_component_state_dict
from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.files import save_safetensors, write_text
from rocket_openvla.state_dicts import format_keys, state_dict_problems

SINGLE_WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"


def check_state_dict(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise ValueError naming every missing, unexpected and mis-shaped key of `found` against `expected`."""
    problems = state_dict_problems(expected, found)
    if problems:
        raise ConfigError(
            f"{source} does not match the model built from its config: " + "; ".join(problems)
            + ". Check that config.json belongs to these weights (published OpenVLA key names, no `vla.` prefix)."
        )


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    if dtype is None:
        return state
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def read_model_state_dict(
    path: Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """All weights of a Hugging Face-layout checkpoint directory (single file or sharded with an index)."""
    index_file, single_file = path / INDEX_NAME, path / SINGLE_WEIGHTS_NAME
    if index_file.is_file():
        weight_map: dict[str, str] = json.loads(index_file.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
        absent = [s for s in shards if not (path / s).is_file()]
        if absent:
            raise MissingInputError(f"{index_file} lists shards that are not in {path}: {format_keys(absent)}")
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(_cast(load_file(path / shard, device=str(device)), dtype))
        return state
    if single_file.is_file():
        return _cast(load_file(single_file, device=str(device)), dtype)
    present = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    raise MissingInputError(
        f"{path} holds neither {SINGLE_WEIGHTS_NAME} nor {INDEX_NAME} "
        f"(found: {format_keys(present) if present else 'nothing'}); "
        "pass a directory in the Hugging Face layout of openvla/openvla-7b (`.bin` pickles are not read: convert "
        "them to safetensors)"
    )


def _shard(state: Mapping[str, torch.Tensor], max_shard_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


def write_model(path: Path, config_json: str, state: Mapping[str, torch.Tensor], max_shard_bytes: int) -> None:
    """Write `config.json` and the weights (sharded above `max_shard_bytes`); stale weight files are removed."""
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in state.items()}
    shards = _shard(state, max_shard_bytes)
    metadata = {"format": "pt"}
    if len(shards) == 1:
        names = [SINGLE_WEIGHTS_NAME]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        save_safetensors(shard, path / name, metadata=metadata)
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
            "weight_map": {k: name for name, shard in zip(names, shards) for k in shard},
        }
        write_text(path / INDEX_NAME, json.dumps(index, indent=2, sort_keys=True))
    write_text(path / "config.json", config_json)
    keep = set(names) | ({INDEX_NAME} if len(shards) > 1 else set())
    for stale in [*path.glob("model*.safetensors"), *path.glob(INDEX_NAME)]:
        if stale.name not in keep:
            stale.unlink()


# --- OFT-style component files (action head, proprio projector, ...) ------------------------------------------------
def find_component_file(run_dir: Path, component: str) -> Path | None:
    """The one `<component>--*_checkpoint.{pt,safetensors}` file in `run_dir`, or None if there is none.

    Raises:
        ValueError: several match (an OFT run dir saved at several steps): name them.
    """
    matches = sorted(
        p for suffix in (".pt", ".safetensors") for p in run_dir.glob(f"{component}--*_checkpoint{suffix}")
    )
    if len(matches) > 1:
        raise ConfigError(
            f"{run_dir} holds {len(matches)} {component} checkpoints ({format_keys([m.name for m in matches])}); "
            "keep one step per directory, as OFT's `--<step>_chkpt` directories do"
        )
    return matches[0] if matches else None


def load_component_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A component's state dict from OFT's `.pt` (weights-only, `module.` stripped) or our `.safetensors`."""
    if path.suffix == ".safetensors":
        return load_file(path)
    return load_oft_component_state_dict(path)


def save_component_state_dict(state: Mapping[str, torch.Tensor], run_dir: Path, component: str, tag: str) -> Path:
    """Write `<run_dir>/<component>--<tag>_checkpoint.safetensors` (OFT's name, our format)."""
    path = run_dir / f"{component}--{tag}_checkpoint.safetensors"
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    save_safetensors(tensors, path, metadata={"format": "pt"})
    return path
