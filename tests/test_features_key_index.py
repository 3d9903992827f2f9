"""KeyIndex: the directory lookup finds exactly what a binary search finds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.features.group_keys import _spread
from pipeline.features.key_index import MAX_RUN, KeyIndex

u64 = st.integers(0, 2**64 - 1)


def binary_search(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    if len(keys) == 0:
        return np.full(len(queries), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[pos] == queries, pos, -1)


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(u64, max_size=300, unique=True), extra=st.lists(u64, max_size=50),
       pick=st.lists(st.integers(0, 10**6), max_size=50), spread=st.booleans())
def test_find_equals_binary_search(keys: list, extra: list, pick: list, spread: bool) -> None:
    """Present and absent queries, raw (clustered) or spread keys, empty tables."""
    table = np.array(sorted(keys), dtype=np.uint64)
    if spread:
        table = np.sort(_spread(table))
    present = table[np.array(pick, dtype=np.int64) % len(table)] if len(table) else table[:0]
    queries = np.concatenate([present, np.array(extra, dtype=np.uint64)])
    index = KeyIndex(table)
    np.testing.assert_array_equal(index.find(queries), binary_search(table, queries))


def test_large_spread_tables_use_the_directory_and_clustered_ones_fall_back() -> None:
    ids = np.arange(200_000, dtype=np.uint64)
    spread = KeyIndex(np.sort(_spread(ids)))
    assert spread.balanced and spread.bits == 17
    clustered = KeyIndex(ids)  # consecutive small ids all share their top bits
    assert not clustered.balanced
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 400_000, 5_000).astype(np.uint64)
    np.testing.assert_array_equal(clustered.find(queries), binary_search(ids, queries))
    queries = _spread(queries)
    np.testing.assert_array_equal(spread.find(queries), binary_search(spread.keys, queries))
    assert np.diff(spread.directory).max() <= MAX_RUN
