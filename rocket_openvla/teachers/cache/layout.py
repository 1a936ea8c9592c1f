"""The on-disk layout of a teacher-feature cache, and the storage encodings.

    <dir>/manifest.json           everything that determines the targets (written first; a resumed precompute
                                  must produce the same one)
    <dir>/shards/<name>.safetensors  per teacher layer t: `layer_<t>` [rows, V*Gh*Gw, C] in the storage dtype
                                  (+ `layer_<t>_scale` [rows, V*Gh*Gw] float32 for 8-bit dtypes); `steps` int32 [rows]
    <dir>/shards/<name>.json      the shard's sha256, size and episodes; written after the shard, it marks it done
    <dir>/index.json              every shard (sha256, bytes) and episode (shard, first row, rows); written last, it
                                  marks the cache complete
    <dir>/.lock                   present while a precompute writes the cache

A row holds one training frame (all cameras, camera-major then row-major over each camera's grid). Frame `step` of an
episode is cached when `step % stride == 0`, in row `first_row + step // stride` of its episode's shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rocket_openvla.errors import ConfigError
from rocket_openvla.files import write_text

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
INDEX_NAME = "index.json"
LOCK_NAME = ".lock"
SHARDS_DIR = "shards"
STEPS_KEY = "steps"
STORAGE_DTYPES = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
    "float8_e4m3fn": torch.float8_e4m3fn,
    "int8": torch.int8,
}
# Largest magnitude a per-token scale maps each token's absmax to.
_QUANTIZED_MAX = {"float8_e4m3fn": float(torch.finfo(torch.float8_e4m3fn).max), "int8": 127.0}


def layer_key(layer: int) -> str:
    return f"layer_{layer}"


def scale_key(layer: int) -> str:
    return f"layer_{layer}_scale"


def shard_path(directory: Path, name: str) -> Path:
    return directory / SHARDS_DIR / f"{name}.safetensors"


def shard_record_path(directory: Path, name: str) -> Path:
    return directory / SHARDS_DIR / f"{name}.json"


def bytes_per_frame(num_layers: int, num_tokens: int, feature_dim: int, dtype: str) -> int:
    """Bytes one cached frame takes: `num_layers` x `num_tokens` x `feature_dim` values (+ float32 scales)."""
    values = num_tokens * feature_dim * STORAGE_DTYPES[dtype].itemsize
    scales = num_tokens * 4 if dtype in _QUANTIZED_MAX else 0
    return num_layers * (values + scales)


# --- encodings ---------------------------------------------------------------------------------------------------
def encode_features(features: torch.Tensor, dtype: str) -> dict[str, torch.Tensor]:
    """float32 `[N, T, C]` -> `{"values": [N, T, C] in dtype}` (+ `"scale": [N, T]` float32 for 8-bit dtypes).

    8-bit: each token is divided by its own scale `absmax / qmax` (qmax 448 for float8_e4m3fn, 127 for int8;
    int8 rounds to nearest).
    """
    if dtype not in _QUANTIZED_MAX:
        return {"values": features.to(STORAGE_DTYPES[dtype])}
    scale = features.abs().amax(dim=-1).float() / _QUANTIZED_MAX[dtype]
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    scaled = features.float() / scale[..., None]
    if dtype == "int8":
        scaled = scaled.round().clamp(-127, 127)
    return {"values": scaled.to(STORAGE_DTYPES[dtype]), "scale": scale}


def decode_features(values: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """The inverse of `encode_features`: float32 `[..., T, C]`."""
    features = values.float()
    return features if scale is None else features * scale[..., None]


# --- manifest ----------------------------------------------------------------------------------------------------
def manifest_differences(cache: Mapping[str, Any], run: Mapping[str, Any], prefix: str = "") -> list[str]:
    """`field: cache=<value>, this run=<value>` for every field of `run` (nested dicts compared field by field) that
    the cache's manifest does not match; fields only the cache records are not compared."""
    differences = []
    for key in sorted(run):
        name = f"{prefix}{key}"
        left, right = cache.get(key, "<absent>"), run[key]
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            differences.extend(manifest_differences(left, right, prefix=f"{name}."))
        elif left != right:
            differences.append(f"{name}: cache={json.dumps(left)}, this run={json.dumps(right)}")
    return differences


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=1, sort_keys=True))


# --- checksums ---------------------------------------------------------------------------------------------------
def sha256_file(path: str | Path, chunk_bytes: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def file_identity(path: Path) -> str:
    """`sha256:<hex>` of a file; what a cache records for a config field that names a file (e.g. a checkpoint)."""
    return f"sha256:{sha256_file(path)}"


# --- the writer's lock -------------------------------------------------------------------------------------------
def lock_owner(directory: Path) -> dict[str, Any] | None:
    """`{"host", "pid"}` of the process writing the cache in `directory`, or None when none is."""
    path = directory / LOCK_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return {"host": "?", "pid": -1}


def acquire_lock(directory: Path) -> None:
    """Take `<directory>/.lock` for this process; a lock left by a dead process on this host is taken over."""
    owner = lock_owner(directory)
    if owner is not None and not _is_stale(owner):
        raise ConfigError(
            f"teacher cache {directory} is being written by process {owner['pid']} on {owner['host']} "
            f"({directory / LOCK_NAME}); wait for it, or delete the lock if that process is gone"
        )
    (directory / LOCK_NAME).unlink(missing_ok=True)
    try:
        descriptor = os.open(directory / LOCK_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise ConfigError(f"teacher cache {directory} was locked by another process just now; run one precompute "
                          "per cache directory") from None
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"host": socket.gethostname(), "pid": os.getpid()}, handle)


def release_lock(directory: Path) -> None:
    (directory / LOCK_NAME).unlink(missing_ok=True)


def _is_stale(owner: Mapping[str, Any]) -> bool:
    """The lock's process is gone: it ran on this host and no longer runs (or is a zombie awaiting its parent)."""
    if owner.get("host") != socket.gethostname():
        return False
    try:
        pid = int(owner["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, TypeError, KeyError):
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" in status
