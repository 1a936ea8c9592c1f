import json

import numpy as np
import pytest

from rocket_openvla.data.config import SYNTHETIC_DATASET_NAME
from rocket_openvla.data.rlds import open_builder
from rocket_openvla.data.statistics import (
    StatisticsMismatchError,
    check_statistics_match,
    compute_statistics,
    load_or_compute_statistics,
    statistics_hash,
    statistics_to_json,
)


def _numpy_statistics(values: np.ndarray) -> dict:
    return {
        "mean": values.mean(0),
        "std": values.std(0),
        "max": values.max(0),
        "min": values.min(0),
        "q01": np.quantile(values, 0.01, axis=0),
        "q99": np.quantile(values, 0.99, axis=0),
    }


def test_statistics_match_numpy_on_the_generated_data(rlds_root, raw_episodes):
    statistics = compute_statistics(open_builder(rlds_root, SYNTHETIC_DATASET_NAME))
    actions = np.concatenate([episode.action for episode in raw_episodes]).astype(np.float64)
    actions[:, -1] = 1.0 - np.clip(actions[:, -1], 0.0, 1.0)  # LIBERO gripper: 1 = open, 0 = closed
    proprio = np.concatenate([episode.state for episode in raw_episodes]).astype(np.float64)
    for feature, values in (("action", actions), ("proprio", proprio)):
        for name, expected in _numpy_statistics(values).items():
            np.testing.assert_allclose(getattr(getattr(statistics, feature), name), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(statistics.action.mask, [True] * 6 + [False])
    assert statistics.proprio.mask is None
    assert statistics.num_transitions == len(actions)
    assert statistics.num_trajectories == len(raw_episodes)
    assert set(np.unique(actions[:, -1])) == {0.0, 1.0}  # the synthetic gripper command is binary


def test_statistics_are_cached_next_to_the_dataset(rlds_root):
    builder = open_builder(rlds_root, SYNTHETIC_DATASET_NAME)
    first = load_or_compute_statistics(builder, SYNTHETIC_DATASET_NAME)
    cache = rlds_root / SYNTHETIC_DATASET_NAME / "1.0.0" / f"dataset_statistics_{statistics_hash(builder)}.json"
    assert cache.is_file()
    assert json.loads(cache.read_text())[SYNTHETIC_DATASET_NAME]["num_transitions"] == first.num_transitions
    # A marked cache entry is what the second call returns: nothing is recomputed.
    original = cache.read_text()
    try:
        entry = json.loads(original)
        entry[SYNTHETIC_DATASET_NAME]["num_transitions"] = 123_456
        cache.write_text(json.dumps(entry))
        assert load_or_compute_statistics(builder, SYNTHETIC_DATASET_NAME).num_transitions == 123_456
    finally:
        cache.write_text(original)


def test_the_cache_key_depends_on_the_dataset(rlds_root):
    names = (SYNTHETIC_DATASET_NAME, "synthetic_b_no_noops")
    assert len({statistics_hash(open_builder(rlds_root, name)) for name in names}) == 2


@pytest.fixture(scope="module")
def stored(rlds_root) -> dict:
    statistics = compute_statistics(open_builder(rlds_root, SYNTHETIC_DATASET_NAME))
    return json.loads(json.dumps(statistics_to_json({SYNTHETIC_DATASET_NAME: statistics})))


def test_identical_statistics_pass_the_resume_check(stored):
    check_statistics_match(stored, json.loads(json.dumps(stored)))


@pytest.mark.parametrize(
    "feature, field, change",
    [
        ("action", "q99", lambda v: [x + 0.1 for x in v]),
        ("proprio", "mean", lambda v: [x * 1.01 + 1e-3 for x in v]),
        ("action", "mask", lambda v: [True] * len(v)),
    ],
)
def test_a_changed_field_is_named(stored, feature, field, change):
    current = json.loads(json.dumps(stored))
    current[SYNTHETIC_DATASET_NAME][feature][field] = change(current[SYNTHETIC_DATASET_NAME][feature][field])
    with pytest.raises(StatisticsMismatchError, match=rf"{SYNTHETIC_DATASET_NAME}.*{feature}\.{field}"):
        check_statistics_match(stored, current)


def test_changed_counts_and_datasets_are_named(stored):
    current = json.loads(json.dumps(stored))
    current[SYNTHETIC_DATASET_NAME]["num_transitions"] += 1
    with pytest.raises(StatisticsMismatchError, match="num_transitions"):
        check_statistics_match(stored, current)
    renamed = {"other_dataset": stored[SYNTHETIC_DATASET_NAME]}
    with pytest.raises(StatisticsMismatchError, match="other_dataset"):
        check_statistics_match(stored, renamed)
