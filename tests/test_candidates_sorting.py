"""``sorting.lexsort`` orders rows exactly as ``np.lexsort`` does, on either of its paths."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.candidates.sorting import lexsort

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1.0, 0.5]),  # many ties
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 6), values, st.integers(-3, 3)), min_size=0, max_size=60
    ),
    grouped=st.booleans(),
    tie_break=st.booleans(),
)
def test_lexsort_matches_numpy(rows: list[tuple], grouped: bool, tie_break: bool) -> None:
    users = np.array([r[0] for r in rows], dtype=np.int64)
    score = np.array([r[1] for r in rows], dtype=np.float64)
    items = np.array([r[2] for r in rows], dtype=np.int64)
    if grouped:  # the recommender's shape: rows already in user order
        order = np.argsort(users, kind="stable")
        users, score, items = users[order], score[order], items[order]
    keys = (items, -score, users) if tie_break else (-score, users)
    np.testing.assert_array_equal(lexsort(keys), np.lexsort(keys))


def test_runs_sorted_in_a_matrix_equal_the_whole_column_sort() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(150, 250, 2000)
    users = np.repeat(np.arange(len(sizes)) * 7 + 3, sizes)
    score = rng.random(len(users)).round(2)  # ties within users
    items = rng.integers(0, 1000, len(users))
    for keys in ((-score, users), (items, -score, users), (-score.astype(np.float32), users)):
        np.testing.assert_array_equal(lexsort(keys), np.lexsort(keys))


def test_one_user_with_most_rows_takes_the_column_path() -> None:
    users = np.r_[np.zeros(10_000, dtype=np.int64), np.arange(1, 11)]
    score = np.random.default_rng(1).random(len(users))
    np.testing.assert_array_equal(lexsort((-score, users)), np.lexsort((-score, users)))
