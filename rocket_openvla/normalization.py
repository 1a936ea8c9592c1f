"""Dataset statistics (`dataset_statistics.json`) and OpenVLA's bounds normalisation of actions and proprio.

Schema of `dataset_statistics.json` (also `config.norm_stats` of OpenVLA checkpoints), keyed by dataset name:

    {"libero_spatial_no_noops": {
        "action":  {"mean": [D], "std": [D], "max": [D], "min": [D], "q01": [D], "q99": [D], "mask": [D] bool?},
        "proprio": {... same keys, usually without "mask" ...}?,
        "num_transitions": int?, "num_trajectories": int?}}

`mask` (optional, default all True) marks the dimensions that are normalised; LIBERO leaves the gripper (last action
dimension) as is. Normalisation (OFT `normalize_action_and_proprio`, `bounds_q99` uses q01/q99, `bounds` min/max):

    normalised = where(mask, clip(2 * (x - low) / (high - low + 1e-8) - 1, -1, 1), x)
    normalised = where(min == max, 0, normalised)        # unused (constant) dimensions become 0

Un-normalisation (OFT `predict_action`): `where(mask, 0.5 * (a + 1) * (high - low + 1e-8) + low, a)`.
Both accept numpy arrays or torch tensors `[..., D]` and return the same kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.files import write_text

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

STATISTIC_NAMES = ("mean", "std", "max", "min", "q01", "q99")
STATISTICS_NAME = "dataset_statistics.json"  # the file name in run and checkpoint directories
BOUNDS_EPS = 1e-8


class NormalizationType(str, Enum):
    """Which bounds map to [-1, 1]: (q01, q99) for LIBERO and Bridge, (min, max) for ALOHA."""

    BOUNDS = "bounds"
    BOUNDS_Q99 = "bounds_q99"


NORMALIZATION_KINDS = tuple(kind.value for kind in NormalizationType)


@dataclass(frozen=True)
class FeatureStatistics:
    """Per-dimension statistics of one feature (action or proprio); every array is `[D]` (mask bool, others float64)."""

    mean: np.ndarray
    std: np.ndarray
    max: np.ndarray
    min: np.ndarray
    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray | None = None

    @classmethod
    def from_values(cls, values: np.ndarray, mask: np.ndarray | None = None) -> FeatureStatistics:
        """Statistics of `values [N, D]` as OpenVLA computes them (population std, linear-interpolated quantiles)."""
        values = np.asarray(values, dtype=np.float64)
        return cls(
            mean=values.mean(0),
            std=values.std(0),
            max=values.max(0),
            min=values.min(0),
            q01=np.quantile(values, 0.01, axis=0),
            q99=np.quantile(values, 0.99, axis=0),
            mask=None if mask is None else np.asarray(mask, dtype=bool),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "statistics") -> FeatureStatistics:
        """Parse the JSON form; `where` names the entry in error messages (e.g. "libero_spatial_no_noops.action")."""
        missing = [name for name in STATISTIC_NAMES if name not in data]
        if missing:
            raise ConfigError(f"{where} lacks {missing}; a statistics entry needs {list(STATISTIC_NAMES)} (+ 'mask')")
        arrays = {name: np.asarray(data[name], dtype=np.float64) for name in STATISTIC_NAMES}
        mask = None if data.get("mask") is None else np.asarray(data["mask"], dtype=bool)
        shapes = {name: array.shape for name, array in {**arrays, "mask": mask}.items() if array is not None}
        if len(set(shapes.values())) != 1 or len(arrays["mean"].shape) != 1:
            raise ConfigError(f"{where}: every statistic must be one vector of the same length, got shapes {shapes}")
        return cls(**arrays, mask=mask)

    def to_dict(self) -> dict[str, list]:
        data = {name: getattr(self, name).tolist() for name in STATISTIC_NAMES}
        if self.mask is not None:
            data["mask"] = self.mask.tolist()
        return data

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def normalize(self, values: ArrayT, kind: NormalizationType = NormalizationType.BOUNDS_Q99) -> ArrayT:
        """Raw `[..., D]` -> normalised `[..., D]` (see the module docstring)."""
        low, high, mask = self._bounds_and_mask(values, kind)
        constant = self._as_array_like(self.min == self.max, values)
        if isinstance(values, torch.Tensor):
            scaled = (2 * (values.to(low.dtype) - low) / (high - low + BOUNDS_EPS) - 1).clamp(-1, 1)
            normalized = torch.where(mask, scaled, values.to(low.dtype))
            return torch.where(constant, torch.zeros_like(normalized), normalized)
        values = np.asarray(values)
        scaled = np.clip(2 * (values - low) / (high - low + BOUNDS_EPS) - 1, -1, 1)
        normalized = np.where(constant, 0.0, np.where(mask, scaled, values))
        return normalized.astype(np.result_type(values.dtype, np.float32))

    def unnormalize(self, values: ArrayT, kind: NormalizationType = NormalizationType.BOUNDS_Q99) -> ArrayT:
        """Normalised `[..., D]` -> raw `[..., D]`; unmasked dimensions pass through."""
        low, high, mask = self._bounds_and_mask(values, kind)
        if isinstance(values, torch.Tensor):
            values = values.to(low.dtype)
            return torch.where(mask, 0.5 * (values + 1) * (high - low + BOUNDS_EPS) + low, values)
        values = np.asarray(values)
        raw = np.where(mask, 0.5 * (values + 1) * (high - low + BOUNDS_EPS) + low, values)
        return raw.astype(np.result_type(values.dtype, np.float32))

    def _bounds_and_mask(self, like: ArrayT, kind: NormalizationType) -> tuple[ArrayT, ArrayT, ArrayT]:
        if like.shape[-1] != self.dim:
            raise ValueError(f"values have {like.shape[-1]} dimensions, the statistics {self.dim}")
        use_quantiles = NormalizationType(kind) is NormalizationType.BOUNDS_Q99
        low, high = (self.q01, self.q99) if use_quantiles else (self.min, self.max)
        mask = np.ones(self.dim, dtype=bool) if self.mask is None else self.mask
        return self._as_array_like(low, like), self._as_array_like(high, like), self._as_array_like(mask, like)

    @staticmethod
    def _as_array_like(array: np.ndarray, like: ArrayT) -> ArrayT:
        """Float statistics become float64 numpy or (at least float32) tensors on `like`'s device; masks stay bool."""
        if not isinstance(like, torch.Tensor):
            return array
        dtype = torch.bool if array.dtype == bool else torch.promote_types(like.dtype, torch.float32)
        return torch.as_tensor(array, dtype=dtype, device=like.device)


@dataclass(frozen=True)
class DatasetStatistics:
    """One dataset's entry of `dataset_statistics.json`."""

    action: FeatureStatistics
    proprio: FeatureStatistics | None = None
    num_transitions: int | None = None
    num_trajectories: int | None = None

    def normalize_proprio(self, state: torch.Tensor, kind: NormalizationType, name: str = "dataset") -> torch.Tensor:
        """A raw robot state `[..., D]` -> normalised float32, as the data pipeline normalised it for training."""
        if self.proprio is None:
            raise ConfigError(
                f"the statistics of {name!r} have no proprio entry, so a raw robot state cannot be normalised; use "
                "the run's dataset_statistics.json (it has one when the data has states)"
            )
        return self.proprio.normalize(state.float(), kind).float()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "dataset") -> DatasetStatistics:
        if "action" not in data:
            raise ConfigError(f"{where} has no 'action' statistics (keys: {sorted(data)})")
        proprio = data.get("proprio")
        return cls(
            action=FeatureStatistics.from_dict(data["action"], f"{where}.action"),
            proprio=None if proprio is None else FeatureStatistics.from_dict(proprio, f"{where}.proprio"),
            num_transitions=None if data.get("num_transitions") is None else int(data["num_transitions"]),
            num_trajectories=None if data.get("num_trajectories") is None else int(data["num_trajectories"]),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.action.to_dict()}
        if self.proprio is not None:
            data["proprio"] = self.proprio.to_dict()
        if self.num_transitions is not None:
            data["num_transitions"] = self.num_transitions
        if self.num_trajectories is not None:
            data["num_trajectories"] = self.num_trajectories
        return data


def parse_dataset_statistics(data: Mapping[str, Mapping[str, Any]]) -> dict[str, DatasetStatistics]:
    """`{dataset_name: entry}` JSON form (a `dataset_statistics.json` or `config.norm_stats`) -> typed statistics."""
    return {name: DatasetStatistics.from_dict(entry, where=name) for name, entry in data.items()}


def load_dataset_statistics(path: str | Path) -> dict[str, DatasetStatistics]:
    """Read a `dataset_statistics.json` file (or the directory that holds one)."""
    path = Path(path)
    if path.is_dir():
        path = path / STATISTICS_NAME
    if not path.is_file():
        raise MissingInputError(f"no dataset statistics at {path}; OFT run directories hold `dataset_statistics.json`")
    with path.open() as file:
        return parse_dataset_statistics(json.load(file))


def save_dataset_statistics(statistics: Mapping[str, DatasetStatistics], path: str | Path) -> Path:
    """Write `{dataset_name: statistics}` as JSON (to a directory: its `dataset_statistics.json`), atomically."""
    path = Path(path)
    if path.is_dir():
        path = path / STATISTICS_NAME
    payload = {name: entry.to_dict() for name, entry in statistics.items()}
    write_text(path, json.dumps(payload, indent=2))
    return path


def select_unnorm_key(statistics: Mapping[str, Any], unnorm_key: str | None) -> str:
    """The dataset whose statistics un-normalise actions: `unnorm_key`, or the only dataset when it is None."""
    available = sorted(statistics)
    if not available:
        raise ConfigError("no dataset statistics to un-normalise with; load the run's `dataset_statistics.json`")
    if unnorm_key is None:
        if len(available) == 1:
            return available[0]
        raise ConfigError(
            f"unnorm_key is not set but statistics exist for {len(available)} datasets: {available}. "
            "Pass unnorm_key=<one of them> (the dataset the actions should be scaled for)."
        )
    if unnorm_key not in statistics:
        raise ConfigError(f"unnorm_key={unnorm_key!r} has no statistics; available keys: {available}")
    return unnorm_key
