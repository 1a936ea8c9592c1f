"""Per-dataset action/proprio statistics: computed once, cached next to the dataset, checked on resume.

Statistics cover every step of every episode of all splits, after LIBERO standardisation (so the gripper is
already 1 = open / 0 = closed), as OFT's `get_dataset_statistics` does. The math (mean, population std, min, max,
linear-interpolated q01/q99) and the JSON schema come from `rocket_openvla.normalization`.

Cache: `<dataset_dir>/dataset_statistics_<sha256>.json`, the hash covering the dataset's identity (its tfds
info: splits, shard lengths, byte counts; its features) and the standardisation code; when the dataset folder
is read-only, `~/.cache/rocket_openvla/dataset_statistics/` is used instead.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rocket_openvla.data.rlds import ACTION_NORMALIZATION_MASK, libero_standardize, read_trajectories
from rocket_openvla.data.tf_runtime import tfds
from rocket_openvla.errors import ConfigError
from rocket_openvla.normalization import (
    DatasetStatistics,
    FeatureStatistics,
    parse_dataset_statistics,
    save_dataset_statistics,
)

logger = logging.getLogger(__name__)

FALLBACK_CACHE_DIR = Path("~/.cache/rocket_openvla/dataset_statistics")


class StatisticsMismatchError(ConfigError):
    """The statistics a run was trained with differ from those of the data it now reads."""


def statistics_hash(builder: tfds.core.DatasetBuilder) -> str:
    """sha256 over the dataset's tfds info and features and the standardisation code."""
    identity = [
        builder.info.as_json,
        json.dumps(builder.info.features.to_json(), sort_keys=True),
        inspect.getsource(libero_standardize),
        repr(ACTION_NORMALIZATION_MASK),
    ]
    return hashlib.sha256("\n".join(identity).encode()).hexdigest()


def compute_statistics(builder: tfds.core.DatasetBuilder) -> DatasetStatistics:
    """Statistics of all standardised steps of the dataset (every split); reads the whole dataset once."""
    trajectories = read_trajectories(builder, split="all").map(lambda t: (t["action"], t["proprio"]))
    actions, proprios = [], []
    for action, proprio in trajectories.as_numpy_iterator():
        actions.append(action)
        proprios.append(proprio)
    if not actions:
        raise ConfigError(f"Dataset at {builder.data_dir} has no episodes; cannot compute statistics")
    actions_array, proprios_array = np.concatenate(actions), np.concatenate(proprios)
    return DatasetStatistics(
        action=FeatureStatistics.from_values(actions_array, mask=np.array(ACTION_NORMALIZATION_MASK)),
        proprio=FeatureStatistics.from_values(proprios_array),
        num_transitions=int(actions_array.shape[0]),
        num_trajectories=len(actions),
    )


def load_or_compute_statistics(builder: tfds.core.DatasetBuilder, name: str) -> DatasetStatistics:
    """Cached statistics of `builder`'s dataset, computing and caching them on first use.

    Safe to call from several processes at once: each writes atomically, and all compute the same values.
    """
    digest = statistics_hash(builder)
    cache_paths = [
        Path(builder.data_dir) / f"dataset_statistics_{digest}.json",
        FALLBACK_CACHE_DIR.expanduser() / f"{name.partition(':')[0]}_{digest}.json",
    ]
    for path in cache_paths:
        if path.is_file():
            logger.info("Loading dataset statistics of %s from %s", name, path)
            (cached,) = parse_dataset_statistics(json.loads(path.read_text())).values()  # one dataset per file
            return cached
    logger.info("Computing dataset statistics of %s (once; cached afterwards)", name)
    statistics = compute_statistics(builder)
    for path in cache_paths:
        if _try_write(path, name, statistics):
            break
    return statistics


def _try_write(path: Path, name: str, statistics: DatasetStatistics) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK):
            return False
        save_dataset_statistics({name: statistics}, path)
        return True
    except OSError as error:
        logger.warning("Could not cache dataset statistics at %s: %s", path, error)
        return False


def check_statistics_match(
    stored: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> None:
    """Raise StatisticsMismatchError unless two `dataset_statistics.json` dicts agree.

    `stored` is what a run saved (e.g. `<run_dir>/dataset_statistics.json`), `current` what the data pipeline
    loaded or computed now. The message names the dataset and the field that differ.
    """
    stored_entries, current_entries = parse_dataset_statistics(stored), parse_dataset_statistics(current)
    if set(stored_entries) != set(current_entries):
        raise StatisticsMismatchError(
            f"dataset_statistics cover different datasets: stored {sorted(stored_entries)}, "
            f"current {sorted(current_entries)}. Fix: resume with the same `dataset` (or mixture) the run used."
        )
    for name, stored_entry in stored_entries.items():
        for field, stored_value, current_value in _fields(stored_entry.to_dict(), current_entries[name].to_dict()):
            if not _values_match(stored_value, current_value, rtol, atol):
                raise StatisticsMismatchError(
                    f"dataset_statistics mismatch for dataset {name!r}, field {field!r}: stored {stored_value} vs "
                    f"current {current_value}. The data under `data_root_dir` is not what the run was trained on; "
                    "fix: point `data_root_dir` at the original data, or start a new run."
                )


def _fields(stored: Mapping, current: Mapping, prefix: str = ""):
    """(dotted field name, stored value, current value) for every leaf present in either dict."""
    for key in sorted(set(stored) | set(current)):
        stored_value, current_value = stored.get(key), current.get(key)
        if isinstance(stored_value, Mapping) and isinstance(current_value, Mapping):
            yield from _fields(stored_value, current_value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", stored_value, current_value


def _values_match(stored: Any, current: Any, rtol: float, atol: float) -> bool:
    if stored is None or current is None:
        return stored is current
    stored_array, current_array = np.asarray(stored), np.asarray(current)
    if stored_array.shape != current_array.shape:
        return False
    if stored_array.dtype == bool or current_array.dtype == bool:
        return bool(np.array_equal(stored_array, current_array))
    return bool(np.allclose(stored_array, current_array, rtol=rtol, atol=atol))


def statistics_to_json(statistics: Mapping[str, DatasetStatistics]) -> dict[str, dict[str, Any]]:
    """Typed statistics -> the `dataset_statistics.json` dict."""
    return {name: entry.to_dict() for name, entry in statistics.items()}
