"""KeyIndex and DenseIndex find exactly what a plain search finds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.features.stats.group_keys import _spread
from pipeline.features.stats.key_index import MAX_RUN, MIN_DENSE_SLOTS, DenseIndex, KeyIndex

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


i64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=150, deadline=None)
@given(base=i64, offsets=st.lists(st.integers(0, 5000), max_size=300, unique=True),
       extra=st.lists(i64, max_size=50), near=st.lists(st.integers(-3, 5003), max_size=50))
def test_dense_find_equals_a_dictionary(base: int, offsets: list, extra: list, near: list) -> None:
    """Ids anywhere in int64 (the table is built on their range), absent queries far off,
    just outside the range, and at the int64 extremes (offsets that wrap)."""
    low = min(base, 2**63 - 1 - 5003)
    keys = np.array([low + o for o in offsets], dtype=np.int64)
    index = DenseIndex.build(keys)
    if len(keys) == 0:
        assert index is None
        return
    assert index is not None
    queries = np.array(
        [*keys[::3], *extra, *(low + n for n in near if -(2**63) <= low + n < 2**63),
         -(2**63), 2**63 - 1], dtype=np.int64)
    where = {int(k): i for i, k in enumerate(keys)}
    expected = np.array([where.get(int(q), -1) for q in queries], dtype=np.int64)
    np.testing.assert_array_equal(index.find(queries), expected)


def test_dense_index_only_for_ids_of_a_compact_range() -> None:
    assert DenseIndex.build(np.array([0, 10**9], dtype=np.int64)) is None  # too sparse
    assert DenseIndex.build(np.array([5, MIN_DENSE_SLOTS], dtype=np.int64)) is not None
    assert DenseIndex.build(np.array([2**63 + 1], dtype=np.uint64)) is None
    assert DenseIndex.build(np.zeros(0, dtype=np.int64)) is None
    ids = np.random.default_rng(1).permutation(1_000_000)[:300_000].astype(np.int64)
    index = DenseIndex.build(ids)  # 300k of the first 1M ids: 3.3 slots a key
    assert index is not None
    np.testing.assert_array_equal(index.find(ids[::-1]), np.arange(len(ids))[::-1])
