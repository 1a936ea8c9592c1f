"""Dataset mixtures: checking members exist and OFT's weight balancing (`make_interleaved_dataset`).

With balancing, weight w_i of dataset i becomes w_i * N_i / sum_j(w_j * N_j), N_i = its number of steps, so equal
weights visit every step equally often. The "length" of a mixture is the number of frames after which every
primary dataset (given weight exactly 1.0) has been seen once in expectation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rocket_openvla.data.rlds import describe_data_root, find_dataset_dir
from rocket_openvla.errors import MissingInputError


def check_members_exist(
    dataset: str, members: Mapping[str, float], data_root_dir: str | Path, known_mixtures: Sequence[str] = ()
) -> None:
    """Raise FileNotFoundError unless every member of `dataset` (a mixture, or one dataset) is on disk.

    The message names the mixture and its missing members, and lists what `data_root_dir` holds.
    """
    if list(members) == [dataset]:
        try:
            find_dataset_dir(data_root_dir, dataset)
        except FileNotFoundError as error:
            raise MissingInputError(f"{error} Known mixtures: {sorted(known_mixtures)}.") from None
        return
    missing = []
    for name in members:
        try:
            find_dataset_dir(data_root_dir, name)
        except FileNotFoundError:
            missing.append(name)
    if missing:
        raise MissingInputError(
            f"Mixture {dataset!r} names datasets that are not under data_root_dir: {missing}. "
            f"{describe_data_root(data_root_dir)} Fix: put them there, or define a mixture of the datasets you "
            "have under `data.mixtures`."
        )


def balance_weights(weights: Sequence[float], num_transitions: Sequence[int]) -> np.ndarray:
    """Sampling probabilities [N]: weights times dataset sizes, normalised to sum 1."""
    balanced = np.asarray(weights, dtype=np.float64) * np.asarray(num_transitions, dtype=np.float64)
    return balanced / balanced.sum()


def mixture_length(weights: Sequence[float], num_transitions: Sequence[int]) -> int:
    """Frames until each primary dataset (weight 1.0; all datasets if none is) is seen once in expectation."""
    probabilities = balance_weights(weights, num_transitions)
    weights_array = np.asarray(weights, dtype=np.float64)
    primary = weights_array == 1.0
    if not primary.any():
        primary = np.ones_like(primary)
    return int((np.asarray(num_transitions, dtype=np.float64) / probabilities)[primary].max())
