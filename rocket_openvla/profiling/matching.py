"""Layer pairs from a student x teacher similarity matrix (e.g. CKA): order-preserving DP and unordered Hungarian.

`monotone_matching` picks K student rows and K teacher columns and pairs them in order (s_1 < ... < s_K with
t_1 < ... < t_K), maximising the summed similarity: the deep-to-deep structure a shared projector with a Matryoshka
schedule expects. `hungarian_matching` is the release's analysis step (`linear_sum_assignment(S.max() - S)`): a
one-to-one assignment of min(rows, columns) pairs with no order constraint, so pairs may cross.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rocket_openvla.errors import ConfigError


def _as_matrix(similarity: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    matrix = np.asarray(similarity, dtype=np.float64)
    if matrix.ndim != 2 or 0 in matrix.shape or not np.isfinite(matrix).all():
        raise ConfigError(f"the similarity matrix must be a finite, non-empty [students, teachers] array, got shape "
                          f"{matrix.shape}{'' if np.isfinite(matrix).all() else ' with non-finite entries'}")
    return matrix


def monotone_matching(similarity: Sequence[Sequence[float]] | np.ndarray, num_pairs: int) -> list[tuple[int, int]]:
    """The order-preserving matching of `num_pairs` rows to `num_pairs` columns with the largest total similarity.

    Dynamic programming over (pairs used, rows seen, columns seen), O(K * R * C); ties go to the earliest layers.

    Args:
        similarity: `[R, C]` (row = student layer, column = teacher layer, in ascending layer order).

    Returns:
        `num_pairs` `(row, column)` positions, both strictly ascending.
    """
    matrix = _as_matrix(similarity)
    rows, columns = matrix.shape
    if not 1 <= num_pairs <= min(rows, columns):
        raise ConfigError(f"num_pairs={num_pairs} does not fit a {rows} x {columns} similarity matrix; use 1 .. "
                          f"{min(rows, columns)}")
    # best[j, a, b]: largest total of j pairs among the first a rows and first b columns
    best = np.full((num_pairs + 1, rows + 1, columns + 1), -np.inf)
    best[0] = 0.0
    for j in range(1, num_pairs + 1):
        for a in range(j, rows + 1):
            for b in range(j, columns + 1):
                best[j, a, b] = max(best[j, a - 1, b], best[j, a, b - 1],
                                    best[j - 1, a - 1, b - 1] + matrix[a - 1, b - 1])
    pairs, a, b = [], rows, columns
    for j in range(num_pairs, 0, -1):
        while True:  # walk back to the cell where pair j was taken
            if best[j, a - 1, b] == best[j, a, b]:
                a -= 1
            elif best[j, a, b - 1] == best[j, a, b]:
                b -= 1
            else:
                break
        pairs.append((a - 1, b - 1))
        a, b = a - 1, b - 1
    return pairs[::-1]


def _min_cost_assignment(cost: np.ndarray) -> list[int]:
    """Column of each row minimising the total cost, for `rows <= columns` (Hungarian method with potentials,
    O(rows^2 * columns))."""
    rows, columns = cost.shape
    u, v = np.zeros(rows + 1), np.zeros(columns + 1)
    owner = np.zeros(columns + 1, dtype=int)  # owner[j]: 1-based row assigned to column j (0: none); column 0 is a sink
    previous = np.zeros(columns + 1, dtype=int)
    for row in range(1, rows + 1):
        owner[0], column = row, 0
        slack = np.full(columns + 1, np.inf)
        visited = np.zeros(columns + 1, dtype=bool)
        while owner[column] != 0:
            visited[column] = True
            current = owner[column]
            reduced = cost[current - 1] - u[current] - v[1:]
            improve = ~visited[1:] & (reduced < slack[1:])
            slack[1:][improve] = reduced[improve]
            previous[1:][improve] = column
            free = np.flatnonzero(~visited[1:]) + 1
            nearest = free[np.argmin(slack[free])]
            delta = slack[nearest]
            u[owner[visited]] += delta
            v[visited] -= delta
            slack[~visited] -= delta
            column = nearest
        while column != 0:
            owner[column] = owner[previous[column]]
            column = previous[column]
    assignment = [-1] * rows
    for column in range(1, columns + 1):
        if owner[column]:
            assignment[owner[column] - 1] = column - 1
    return assignment


def hungarian_matching(similarity: Sequence[Sequence[float]] | np.ndarray) -> list[tuple[int, int]]:
    """The one-to-one assignment of min(R, C) pairs with the largest total similarity, no order constraint.

    Returns:
        `(row, column)` positions sorted by row (columns may go down: pairs can cross).
    """
    matrix = _as_matrix(similarity)
    cost = matrix.max() - matrix
    if matrix.shape[0] <= matrix.shape[1]:
        pairs = list(enumerate(_min_cost_assignment(cost)))
    else:
        pairs = [(row, column) for column, row in enumerate(_min_cost_assignment(cost.T))]
    return sorted(pairs)
