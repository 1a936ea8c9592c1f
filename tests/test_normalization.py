import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rocket_openvla.normalization import (
    DatasetStatistics,
    FeatureStatistics,
    NormalizationType,
    load_dataset_statistics,
    parse_dataset_statistics,
    save_dataset_statistics,
    select_unnorm_key,
)


def make_statistics(mask: bool = True) -> FeatureStatistics:
    """Four dimensions: two normal, one left unnormalised by the mask, one constant (min == max)."""
    return FeatureStatistics(
        mean=np.array([0.0, 1.0, 0.5, 2.0]),
        std=np.array([1.0, 2.0, 0.5, 0.0]),
        max=np.array([3.0, 9.0, 1.0, 2.0]),
        min=np.array([-3.0, -5.0, 0.0, 2.0]),
        q01=np.array([-2.0, -4.0, 0.0, 2.0]),
        q99=np.array([2.5, 8.0, 1.0, 2.0]),
        mask=np.array([True, True, False, True]) if mask else None,
    )


def reference_normalize(x: np.ndarray, low, high, mask, constant) -> np.ndarray:
    out = np.where(mask, np.clip(2 * (x - low) / (high - low + 1e-8) - 1, -1, 1), x)
    return np.where(constant, 0.0, out)


@pytest.fixture()
def raw_values() -> np.ndarray:
    return np.random.default_rng(0).uniform(-6, 10, (5, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("kind", list(NormalizationType))
def test_normalize_matches_the_openvla_formula(raw_values, kind):
    stats = make_statistics()
    low, high = (stats.q01, stats.q99) if kind is NormalizationType.BOUNDS_Q99 else (stats.min, stats.max)
    expected = reference_normalize(raw_values.astype(np.float64), low, high, stats.mask, stats.min == stats.max)

    normalized = stats.normalize(raw_values, kind)

    assert normalized.dtype == np.float32 and normalized.shape == raw_values.shape
    np.testing.assert_allclose(normalized, expected, atol=1e-6)
    assert np.all(normalized[..., 3] == 0)  # constant dimension
    np.testing.assert_array_equal(normalized[..., 2], raw_values[..., 2])  # masked out: passes through
    np.testing.assert_allclose(stats.normalize(torch.from_numpy(raw_values), kind).numpy(), expected, atol=1e-6)


def test_missing_mask_normalises_every_dimension(raw_values):
    stats = make_statistics(mask=False)
    expected = reference_normalize(raw_values.astype(np.float64), stats.q01, stats.q99, True, stats.min == stats.max)
    np.testing.assert_allclose(stats.normalize(raw_values), expected, atol=1e-6)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_unnormalize_inverts_normalize_inside_the_bounds(as_tensor):
    stats = make_statistics()
    rng = np.random.default_rng(1)
    raw = rng.uniform(stats.q01, stats.q99, (100, 4))
    raw[:, 3] = 2.0  # the constant dimension only ever holds its constant
    raw = torch.from_numpy(raw) if as_tensor else raw

    recovered = stats.unnormalize(stats.normalize(raw))

    np.testing.assert_allclose(np.asarray(recovered), np.asarray(raw), atol=1e-6)


def test_unnormalize_matches_openvla_formula_and_keeps_unmasked_dims():
    stats = make_statistics()
    normalized = np.random.default_rng(2).uniform(-1, 1, (6, 4))
    mask = stats.mask
    expected = np.where(mask, 0.5 * (normalized + 1) * (stats.q99 - stats.q01 + 1e-8) + stats.q01, normalized)
    np.testing.assert_allclose(stats.unnormalize(normalized), expected, rtol=1e-12)
    tensor_result = stats.unnormalize(torch.from_numpy(normalized).float())
    assert tensor_result.dtype == torch.float32
    np.testing.assert_allclose(tensor_result.numpy(), expected, atol=1e-6)


def test_normalize_rejects_wrong_dimension():
    with pytest.raises(ValueError, match="3 dimensions, the statistics 4"):
        make_statistics().normalize(np.zeros((2, 3)))


def test_statistics_round_trip_through_json(tmp_path):
    statistics = {
        "libero_spatial_no_noops": DatasetStatistics(
            action=make_statistics(), proprio=make_statistics(mask=False), num_transitions=52970, num_trajectories=432
        ),
        "other": DatasetStatistics(action=make_statistics()),
    }

    path = save_dataset_statistics(statistics, tmp_path)

    assert path == tmp_path / "dataset_statistics.json"
    assert [p.name for p in tmp_path.iterdir()] == ["dataset_statistics.json"]  # no temp file left behind
    raw = json.loads(path.read_text())
    assert set(raw["libero_spatial_no_noops"]) == {"action", "proprio", "num_transitions", "num_trajectories"}
    assert set(raw["libero_spatial_no_noops"]["action"]) == {"mean", "std", "max", "min", "q01", "q99", "mask"}
    assert "mask" not in raw["libero_spatial_no_noops"]["proprio"]
    assert set(raw["other"]) == {"action"}
    loaded = load_dataset_statistics(path)
    assert {name: entry.to_dict() for name, entry in loaded.items()} == raw


def test_from_values_computes_openvla_statistics():
    values = np.stack([np.arange(101.0), np.full(101, 4.0)], axis=1)
    stats = FeatureStatistics.from_values(values, mask=[True, False])
    np.testing.assert_allclose(stats.q01, [1.0, 4.0])
    np.testing.assert_allclose(stats.q99, [99.0, 4.0])
    np.testing.assert_allclose(stats.mean, [50.0, 4.0])
    np.testing.assert_allclose(stats.std, [np.sqrt(850.0), 0.0])
    assert stats.mask.tolist() == [True, False]


def test_schema_errors_name_the_entry():
    entry = make_statistics().to_dict()
    del entry["q99"]
    with pytest.raises(ValueError, match=r"libero\.action lacks \['q99'\]"):
        parse_dataset_statistics({"libero": {"action": entry}})
    with pytest.raises(ValueError, match="same length"):
        FeatureStatistics.from_dict({**make_statistics().to_dict(), "mask": [True]}, "x")
    with pytest.raises(ValueError, match="no 'action'"):
        parse_dataset_statistics({"libero": {"proprio": make_statistics().to_dict()}})
    with pytest.raises(FileNotFoundError, match="dataset_statistics.json"):
        load_dataset_statistics(Path("/nonexistent/run"))


def test_select_unnorm_key():
    one = {"libero_spatial_no_noops": {}}
    several = {"libero_goal_no_noops": {}, "libero_10_no_noops": {}}
    assert select_unnorm_key(one, None) == "libero_spatial_no_noops"
    assert select_unnorm_key(several, "libero_10_no_noops") == "libero_10_no_noops"
    with pytest.raises(ValueError, match=r"2 datasets: \['libero_10_no_noops', 'libero_goal_no_noops'\]"):
        select_unnorm_key(several, None)
    with pytest.raises(ValueError, match=r"unnorm_key='bridge' has no statistics; available keys: \['libero"):
        select_unnorm_key(several, "bridge")
    with pytest.raises(ValueError, match="no dataset statistics"):
        select_unnorm_key({}, None)
