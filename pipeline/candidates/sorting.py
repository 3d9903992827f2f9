"""``np.lexsort`` semantics, fast on the shapes the recommender sorts: millions of rows that are
already grouped by user, a few hundred per user.

Such rows are sorted within each user's run by laying the runs out as the rows of a (users x
longest run) matrix and sorting along its rows: every sort touches a few hundred values that fit in
cache, instead of a stable sort of the whole column. Other inputs (users not in
order, one user with most of the rows) take successive stable ``argsort`` passes, one per key.
"""

from __future__ import annotations

import numpy as np

#: The matrix may hold at most this many cells per row (beyond, padding would cost more than the
#: whole-column sort saves).
_MAX_PADDING = 2


def run_start_indices(keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in ``keys`` (sorted, or at least grouped)."""
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(
        0, dtype=np.int64)


def rank_within(keys: np.ndarray) -> np.ndarray:
    """1-based position of each row within its run of equal (grouped) keys."""
    starts = run_start_indices(keys)
    sizes = np.diff(np.r_[starts, len(keys)])
    return np.arange(len(keys)) - np.repeat(starts, sizes) + 1


def lexsort(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """Indices sorting by the last key, then the one before it, ...; like ``np.lexsort``
    (stable; NaN after every number)."""
    order = _sort_within_runs(keys[-1], keys[:-1]) if len(keys) >= 2 else None
    if order is not None:
        return order
    order = np.argsort(keys[0], kind="stable")
    for key in keys[1:]:
        order = order[np.argsort(key[order], kind="stable")]
    return order


def _sort_within_runs(primary: np.ndarray, secondary: tuple[np.ndarray, ...]) -> np.ndarray | None:
    """``lexsort((*secondary, primary))`` when ``primary`` is non-decreasing: each run of equal
    ``primary`` sorted on its own as a row of a padded matrix. None when the shape does not suit
    (``primary`` out of order, runs too uneven, keys that are not numbers)."""
    n = len(primary)
    if n < 2 or not all(k.dtype.kind in "iuf" for k in secondary):
        return None
    if not bool((primary[1:] >= primary[:-1]).all()):
        return None
    starts = run_start_indices(primary)
    sizes = np.diff(np.r_[starts, n])
    width = int(sizes.max())
    if len(starts) * width > _MAX_PADDING * n:
        return None
    run = np.repeat(np.arange(len(starts)), sizes)
    column = np.arange(n) - starts[run]
    cells = []
    for key in secondary:
        # Padding sorts after every real value (ties with the largest go to the real one: it sits
        # in an earlier column and the sort is stable); NaN sorts after it and is kept in place.
        pad = np.inf if key.dtype.kind == "f" else np.iinfo(key.dtype).max
        matrix = np.full((len(starts), width), pad, dtype=key.dtype)
        matrix[run, column] = key
        cells.append(matrix)
    if len(cells) == 1:
        within = np.argsort(cells[0], axis=1, kind="stable")
    else:
        within = np.lexsort(cells, axis=1)
    real = within < sizes[:, None]
    return (starts[:, None] + within)[real]
