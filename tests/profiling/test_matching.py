"""Layer pairs from a similarity matrix: the order-preserving DP against brute force, the Hungarian assignment."""

import itertools

import numpy as np
import pytest

from rocket_openvla.errors import ConfigError
from rocket_openvla.profiling import hungarian_matching, monotone_matching


def _total(matrix, pairs):
    return sum(matrix[r][c] for r, c in pairs)


def _order_preserving_choices(rows, columns, k):
    for chosen_rows in itertools.combinations(range(rows), k):
        for chosen_columns in itertools.combinations(range(columns), k):
            yield list(zip(chosen_rows, chosen_columns))


@pytest.mark.parametrize("seed", range(6))
def test_monotone_matching_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    rows, columns = rng.integers(3, 7, size=2)
    matrix = rng.random((rows, columns))
    if seed % 2:
        matrix = np.round(matrix, 1)  # ties
    for k in range(1, min(rows, columns) + 1):
        pairs = monotone_matching(matrix, k)
        assert len(pairs) == k
        assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(pairs, pairs[1:]))  # order-preserving
        totals = [_total(matrix, choice) for choice in _order_preserving_choices(rows, columns, k)]
        assert _total(matrix, pairs) == pytest.approx(max(totals), abs=1e-12)
        assert all(total <= _total(matrix, pairs) + 1e-12 for total in totals)  # never worse than any choice


@pytest.mark.parametrize("seed", range(6))
def test_hungarian_matching_equals_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    rows, columns = (int(v) for v in rng.integers(2, 7, size=2))
    matrix = rng.random((rows, columns))
    pairs = hungarian_matching(matrix)
    assert len(pairs) == min(rows, columns)
    assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)
    if rows <= columns:
        best = max(sum(matrix[r, p[r]] for r in range(rows)) for p in itertools.permutations(range(columns), rows))
    else:
        best = max(sum(matrix[p[c], c] for c in range(columns)) for p in itertools.permutations(range(rows), columns))
    assert _total(matrix, pairs) == pytest.approx(best, abs=1e-12)


def test_hungarian_pairs_may_cross_where_the_monotone_matching_keeps_order():
    matrix = [[0.1, 0.9], [0.8, 0.2]]
    assert hungarian_matching(matrix) == [(0, 1), (1, 0)]  # crossing: student 0 -> teacher 1, student 1 -> teacher 0
    assert monotone_matching(matrix, 2) == [(0, 0), (1, 1)]
    assert monotone_matching(matrix, 1) == [(0, 1)]


def test_bad_matrices_and_pair_counts_are_refused():
    with pytest.raises(ConfigError, match=r"num_pairs=3 does not fit a 2 x 4 similarity matrix"):
        monotone_matching(np.ones((2, 4)), 3)
    with pytest.raises(ConfigError, match="non-finite"):
        hungarian_matching([[0.5, float("nan")]])
