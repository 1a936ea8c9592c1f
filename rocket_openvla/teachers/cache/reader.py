"""`TeacherCache`: open a finished cache, check it against a run, and read a batch's targets by sample key.

A sample key is `(episode_id, step)`: the episode's tfds id and the frame's step in it, as the data pipeline carries
them. Reads run in a thread pool (`submit`), off the training thread (the finetune loop submits a batch's read
while the previous batch trains); shard files are memory-mapped and each process checks a shard's sha256 the first
time it reads it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.teachers.cache.layout import (
    INDEX_NAME,
    MANIFEST_NAME,
    SHARDS_DIR,
    decode_features,
    layer_key,
    lock_owner,
    manifest_differences,
    read_json,
    scale_key,
    sha256_file,
    shard_path,
)

logger = logging.getLogger(__name__)


class CacheCorruptedError(MissingInputError):
    """A shard whose bytes do not match the checksum the precompute recorded."""


@dataclass
class CachedBatch:
    """One batch's cached features.

    Attributes:
        features: one `[B, sum_v Gh_v*Gw_v, C]` float32 tensor per requested layer (zeros where `valid` is False).
        valid: `[B]` bool, False for frames the cache skipped (`stride`).
    """

    features: list[torch.Tensor]
    valid: torch.Tensor


class TeacherCache:
    """A complete cache directory (see `rocket_openvla.teachers.cache.layout`), opened for reading."""

    def __init__(self, directory: str | Path, *, verify_checksums: bool = True, num_readers: int = 2,
                 pin_memory: bool = False) -> None:
        self.directory = Path(directory)
        if not (self.directory / MANIFEST_NAME).is_file():
            raise MissingInputError(
                f"teacher_cache.dir={self.directory} holds no {MANIFEST_NAME}; write the cache first with "
                "vla-scripts/precompute_teacher.py --config_path <the run's config> --teacher_cache.dir DIR"
            )
        owner = lock_owner(self.directory)
        if owner is not None:
            raise ConfigError(
                f"teacher cache {self.directory} is being written by process {owner['pid']} on {owner['host']}; "
                "train from it when the precompute has finished"
            )
        if not (self.directory / INDEX_NAME).is_file():
            done = len(list((self.directory / SHARDS_DIR).glob("*.json")))
            raise MissingInputError(
                f"teacher cache {self.directory} is incomplete ({done} shards written, no {INDEX_NAME}); rerun "
                "vla-scripts/precompute_teacher.py with the same config to finish it"
            )
        self.manifest = read_json(self.directory / MANIFEST_NAME)
        index = read_json(self.directory / INDEX_NAME)
        self.shards: dict[str, dict[str, Any]] = index["shards"]
        self.episodes: dict[str, list] = index["episodes"]  # episode id -> [shard, first row, rows]
        self.stride: int = self.manifest["stride"]
        self.verify_checksums, self.pin_memory = verify_checksums, pin_memory
        self._check_sizes()
        self._handles: dict[str, Any] = {}
        self._handles_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=num_readers, thread_name_prefix="teacher-cache")

    # --- checks --------------------------------------------------------------------------------------------------
    def check_run(self, run: Mapping[str, Any]) -> None:
        """Refuse (ConfigError listing the differing fields) unless the manifest matches every field of `run`.

        The run's `layers` need only be among the cached layers, and its `datasets` among the cached datasets.
        """
        run = dict(run)
        needed = run.pop("layers", [])
        differences = manifest_differences(self.manifest, run)
        missing = sorted(set(needed) - set(self.manifest["layers"]))
        if missing:
            differences.insert(0, f"layers: the run needs teacher layers {missing}, the cache holds "
                                  f"{self.manifest['layers']}")
        if differences:
            raise ConfigError(
                f"teacher cache {self.directory} was made for a different set-up:\n  " + "\n  ".join(differences)
                + "\nRecompute it for this config (vla-scripts/precompute_teacher.py), or train on the fly "
                "(teacher_cache.dir null)"
            )

    def _check_sizes(self) -> None:
        problems = []
        for name, record in self.shards.items():
            path = shard_path(self.directory, name)
            size = path.stat().st_size if path.is_file() else None
            if size != record["bytes"]:
                problems.append(f"{path.name} ({'missing' if size is None else f'{size} bytes'}, "
                                f"expected {record['bytes']})")
        if problems:
            raise CacheCorruptedError(
                f"teacher cache {self.directory}: {len(problems)} shards are missing or truncated: "
                f"{', '.join(problems[:5])}{' ...' if len(problems) > 5 else ''}; recompute them (delete the shard "
                "and its .json, then rerun the precompute)"
            )

    # --- reading -------------------------------------------------------------------------------------------------
    def submit(self, keys: Sequence[tuple[str, int]], layers: Sequence[int]) -> Future[CachedBatch]:
        """Start reading the features of `keys` (episode id, step) for `layers` in a reader thread."""
        rows = self._rows(keys)  # raises on missing keys here, on the caller's thread
        return self._pool.submit(self._read, rows, list(layers))

    def read(self, keys: Sequence[tuple[str, int]], layers: Sequence[int]) -> CachedBatch:
        return self.submit(keys, layers).result()

    def _rows(self, keys: Sequence[tuple[str, int]]) -> list[tuple[str, int] | None]:
        """(shard, row) of each key, or None for a frame the cache skipped; raise when keys are not cached."""
        rows, missing = [], {}
        for episode_id, step in keys:
            entry = self.episodes.get(episode_id)
            if entry is None or step // self.stride >= entry[2]:
                missing.setdefault(episode_id, []).append(step)
                continue
            shard, first_row, _ = entry
            rows.append((shard, first_row + step // self.stride) if step % self.stride == 0 else None)
        if missing:
            shown = "; ".join(f"{episode} steps {steps}" for episode, steps in list(missing.items())[:5])
            raise MissingInputError(
                f"teacher cache {self.directory} lacks {sum(map(len, missing.values()))} of {len(keys)} frames of "
                f"this batch, from {len(missing)} episodes: {shown}. The cache was made from other data; recompute it"
            )
        return rows

    def _read(self, rows: list[tuple[str, int] | None], layers: list[int]) -> CachedBatch:
        valid = torch.tensor([row is not None for row in rows])
        return CachedBatch([self._read_layer(rows, layer) for layer in layers], valid)

    def _read_layer(self, rows: list[tuple[str, int] | None], layer: int) -> torch.Tensor:
        """`[B, tokens, C]` float32; zeros for the frames the cache skipped."""
        samples = [self._read_row(*row, layer) if row is not None else None for row in rows]
        num_tokens = sum(grid[0] * grid[1] for grid in self.manifest["grids"])
        empty = torch.zeros(num_tokens, self.manifest["feature_dim"])
        stacked = torch.stack([sample if sample is not None else empty for sample in samples])
        return stacked.pin_memory() if self.pin_memory else stacked

    def _read_row(self, shard: str, row: int, layer: int) -> torch.Tensor:
        handle = self._handle(shard)
        values = handle.get_slice(layer_key(layer))[row]
        scale = handle.get_slice(scale_key(layer))[row] if scale_key(layer) in handle.keys() else None
        return decode_features(values, scale)

    def _handle(self, shard: str) -> Any:
        """The shard's open file, checked against its sha256 on first use (outside the lock: other shards' reads go
        on meanwhile; two threads may check the same shard once each)."""
        with self._handles_lock:
            handle = self._handles.get(shard)
        if handle is not None:
            return handle
        path = shard_path(self.directory, shard)
        if self.verify_checksums and sha256_file(path) != self.shards[shard]["sha256"]:
            raise CacheCorruptedError(
                f"teacher cache shard {path} does not match its recorded sha256 (corrupted); delete it and its .json "
                "and rerun the precompute"
            )
        opened = safe_open(str(path), framework="pt")
        with self._handles_lock:
            return self._handles.setdefault(shard, opened)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._handles.clear()
