"""Checkpoint files of OpenVLA models and OFT runs: the Hugging Face safetensors layout, OFT's component files,
strict key checks that name what is wrong. Nothing here builds a model.

Layouts read and written:
    <dir>/config.json + model.safetensors                                   (one file)
    <dir>/config.json + model-0000k-of-0000n.safetensors + model.safetensors.index.json   (sharded, as openvla-7b)
    <dir>/<component>--<tag>.safetensors             ours (no "checkpoint" in the name: OFT's lookup skips it)
    <dir>/<component>--<tag>_checkpoint.pt           OFT's (torch pickle of tensors, DDP `module.` prefix; read
                                                     weights-only); written beside ours for OFT's evaluation
    <dir>/<component>--<tag>_checkpoint.safetensors  ours before OFT export existed (still read)
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
from rocket_openvla.backbones.openvla.oft_format import OFT_CHECKPOINT_MARK, save_oft_component_state_dict
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


# --- component files (action head, proprio projector, ...) ---------------------------------------------------------
def component_file_name(component: str, tag: str) -> str:
    """`<component>--<tag>.safetensors`, our name: without "checkpoint", so OFT's lookup never picks it up."""
    return f"{component}--{tag}.safetensors"


def _tag(path: Path, component: str) -> str:
    return path.name.removeprefix(f"{component}--").removesuffix(path.suffix).removesuffix(f"_{OFT_CHECKPOINT_MARK}")


def find_component_file(run_dir: Path, component: str) -> Path | None:
    """The file holding `component` in `run_dir` (module docstring), or None if there is none.

    Ours (`.safetensors`, both names) is preferred to OFT's `.pt` beside it.

    Raises:
        ValueError: several files of one kind (an OFT run dir saved at several steps), or a `.safetensors` and a
            `.pt` of different tags (two loaders would read different heads): name them.
    """
    ours = sorted(run_dir.glob(f"{component}--*.safetensors"))
    oft = sorted(run_dir.glob(f"{component}--*_{OFT_CHECKPOINT_MARK}.pt"))
    for matches in (ours, oft):
        if len(matches) > 1:
            raise ConfigError(
                f"{run_dir} holds {len(matches)} {component} checkpoints ({format_keys([m.name for m in matches])}); "
                "keep one step per directory, as OFT's `--<step>_chkpt` directories do"
            )
    if ours and oft and _tag(ours[0], component) != _tag(oft[0], component):
        raise ConfigError(
            f"{run_dir} holds {ours[0].name} and {oft[0].name}, {component} files of different steps (OFT's evaluation "
            "reads the .pt, we read the .safetensors); remove the one that does not belong"
        )
    return (ours or oft or [None])[0]


def load_component_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A component's state dict from our `.safetensors` or OFT's `.pt` (weights-only, `module.` stripped)."""
    if path.suffix == ".safetensors":
        return load_file(path)
    return load_oft_component_state_dict(path)


def save_component_state_dict(
    state: Mapping[str, torch.Tensor], run_dir: Path, component: str, tag: str, oft_copy: bool
) -> list[Path]:
    """Write `<component>--<tag>.safetensors` and, if `oft_copy`, OFT's `<component>--<tag>_checkpoint.pt`; remove
    the component's files of other tags or forms, so that each loader finds exactly one. Returns the paths written.
    """
    if OFT_CHECKPOINT_MARK in tag or "/" in tag:
        raise ConfigError(
            f"checkpoint tag={tag!r}: a tag may contain neither {OFT_CHECKPOINT_MARK!r} (OFT would take our "
            ".safetensors file for a head checkpoint) nor '/'; use e.g. 'latest' or 'step_1000'"
        )
    path = run_dir / component_file_name(component, tag)
    save_safetensors({k: v.detach().contiguous() for k, v in state.items()}, path, metadata={"format": "pt"})
    written = [path]
    if oft_copy:
        written.append(save_oft_component_state_dict(state, run_dir, component, tag))
    for stale in run_dir.glob(f"{component}--*"):
        if stale not in written:
            stale.unlink()
    return written
