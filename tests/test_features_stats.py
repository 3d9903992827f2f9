"""Statistics merge: stats of any split of the rows, merged in any order, equal the whole's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.features.stats.moments import Moments
from pipeline.features.stats.te_stats import TargetStats
from pipeline.features.stats.vocab import ValueCounts

rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"])),
        st.one_of(st.none(), st.integers(-3, 3)),
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
        st.one_of(st.none(), st.sampled_from([0.0, 1.0])),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=40,
)


def frame_of(data: list) -> pd.DataFrame:
    s, i, x, y, fold = zip(*data, strict=True)
    return pd.DataFrame(
        {
            "s": pd.Series(s, dtype="str"),
            "i": pd.Series(i, dtype="Int64"),
            "x": pd.Series(x, dtype="float64"),
            "y": pd.Series(y, dtype="float64"),
            "fold": np.array(fold, dtype=np.int64),
        }
    )


def split_and_merge(frame: pd.DataFrame, cuts: list[int], order: list[int], stat, merge):
    """Stats of chunks, merged as a random binary tree (the order list picks adjacent pairs)."""
    bounds = sorted({0, len(frame), *(c % (len(frame) + 1) for c in cuts)})
    parts = [stat(frame.iloc[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    parts = parts or [stat(frame.iloc[:0])]
    for pick in order:
        if len(parts) == 1:
            break
        k = pick % (len(parts) - 1)
        parts[k : k + 2] = [merge(parts[k], parts[k + 1])]
    while len(parts) > 1:
        parts[-2:] = [merge(parts[-2], parts[-1])]
    return parts[0]


splits = {"cuts": st.lists(st.integers(0, 50), max_size=6), "order": st.lists(st.integers(0, 9))}


@settings(max_examples=100, deadline=None)
@given(data=rows, **splits)
def test_value_counts_merge(data: list, cuts: list[int], order: list[int]) -> None:
    frame = frame_of(data)
    for column, kind in (("s", "str"), ("i", "int")):

        def stat(f: pd.DataFrame, column: str = column, kind: str = kind) -> ValueCounts:
            return ValueCounts.from_partition(f[column], kind, "test")

        whole, merged = stat(frame), split_and_merge(frame, cuts, order, stat, ValueCounts.merge)
        assert merged.nulls == whole.nulls
        pdt.assert_series_equal(merged.counts, whole.counts, check_index_type=False)
        reference = frame[column].value_counts().sort_index()
        assert merged.counts.to_dict() == reference.to_dict()


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=1, max_size=40),
    numbers=st.lists(st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)), min_size=1,
                     max_size=40),
    cuts=st.lists(st.integers(0, 50), max_size=8),
)
def test_value_counts_merge_many_equals_whole(
    values: list, numbers: list, cuts: list[int]
) -> None:
    """One k-way merge of any split (unicode strings, floats) equals the whole's counts."""
    for series, kind in ((pd.Series(values, dtype="str"), "str"),
                         (pd.Series(numbers, dtype="float64"), "float")):
        bounds = sorted({0, len(series), *(c % (len(series) + 1) for c in cuts)})
        parts = [ValueCounts.from_partition(series.iloc[a:b], kind, "test")
                 for a, b in zip(bounds, bounds[1:], strict=False)]
        whole = ValueCounts.from_partition(series, kind, "test")
        merged = ValueCounts.merge_many(parts)
        assert merged.nulls == whole.nulls
        pdt.assert_series_equal(merged.counts, whole.counts, check_index_type=False)


@settings(max_examples=100, deadline=None)
@given(data=rows, **splits)
def test_moments_merge_matches_numpy(data: list, cuts: list[int], order: list[int]) -> None:
    frame = frame_of(data)

    def stat(f: pd.DataFrame) -> Moments:
        return Moments.from_partition(f, ["x", "i"])

    merged = split_and_merge(frame, cuts, order, stat, Moments.merge)
    for j, c in enumerate(["x", "i"]):
        x = frame[c].dropna().to_numpy(dtype=np.float64)
        assert merged.count[j] == len(x)
        if len(x):
            np.testing.assert_allclose(merged.mean[j], x.mean(), rtol=1e-9, atol=1e-6)
            np.testing.assert_allclose(merged.std[j], x.std(), rtol=1e-7, atol=1e-4)


def test_moments_are_accurate_for_a_large_offset() -> None:
    # Sums of squares would lose every digit here; Chan's merge keeps the variance.
    x = 1e9 + np.arange(1000, dtype=np.float64)
    frame = pd.DataFrame({"x": x})
    parts = [Moments.from_partition(frame.iloc[i : i + 7], ["x"]) for i in range(0, 1000, 7)]
    merged = parts[0]
    for p in parts[1:]:
        merged = Moments.merge(merged, p)
    np.testing.assert_allclose(merged.std[0], x.std(), rtol=1e-9)


@settings(max_examples=100, deadline=None)
@given(data=rows, **splits, oof=st.booleans())
def test_target_stats_merge(data: list, cuts: list[int], order: list[int], oof: bool) -> None:
    frame = frame_of(data)
    n_folds = 3 if oof else 1

    def stat(f: pd.DataFrame) -> TargetStats:
        folds = f["fold"].to_numpy() if oof else None
        return TargetStats.from_partition(f, ["s", "i"], ["str", "int"], "y", folds, n_folds, "t")

    whole, merged = stat(frame), split_and_merge(frame, cuts, order, stat, TargetStats.merge)
    np.testing.assert_array_equal(merged.total_count, whole.total_count)
    np.testing.assert_allclose(merged.total_sum, whole.total_sum)  # 0/1 targets: exact anyway
    if whole.table().empty:
        assert merged.table().empty
        return
    pdt.assert_frame_equal(merged.table(), whole.table(), check_dtype=False)
    # Reference: a plain groupby over rows whose keys and target are all present.
    ok = frame.dropna(subset=["s", "i", "y"]).astype({"i": "int64"})
    cols = ["s", "i", "fold"] if oof else ["s", "i"]
    ref = ok.groupby(cols)["y"].agg(["size", "sum"]).reset_index()
    got = merged.table().rename(columns={"__fold__": "fold"})
    got = got.drop(columns=[] if oof else ["fold"]).sort_values(cols).reset_index(drop=True)
    assert got[cols].astype({"s": object}).values.tolist() == ref[cols].values.tolist()
    assert got["count"].tolist() == ref["size"].tolist()
    assert got["sum"].tolist() == ref["sum"].tolist()
    collapsed = merged.collapse_folds().table()
    assert collapsed["count"].sum() == len(ok)


@settings(max_examples=60, deadline=None)
@given(data=rows, cuts=st.lists(st.integers(0, 40), max_size=6), oof=st.booleans(),
       chunk=st.integers(1, 5))
def test_target_stats_merge_many_in_key_chunks(data: list, cuts: list[int], oof: bool,
                                               chunk: int) -> None:
    """Merging every partition at once, a few keys at a time, equals the whole's statistics."""
    import pipeline.features.stats.te_stats as te

    frame = frame_of(data)
    n_folds = 3 if oof else 1

    def stat(f: pd.DataFrame) -> TargetStats:
        folds = f["fold"].to_numpy() if oof else None
        return TargetStats.from_partition(f, ["s", "i"], ["str", "int"], "y", folds, n_folds, "t")

    bounds = sorted({0, len(frame), *(c for c in cuts if c < len(frame))})
    parts = [stat(frame.iloc[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    saved, te.MERGE_CHUNK_KEYS = te.MERGE_CHUNK_KEYS, chunk
    try:
        merged = TargetStats.merge_many(parts, "t")
    finally:
        te.MERGE_CHUNK_KEYS = saved
    whole = stat(frame)
    np.testing.assert_array_equal(merged.total_count, whole.total_count)
    np.testing.assert_allclose(merged.total_sum, whole.total_sum)
    np.testing.assert_array_equal(merged.key, whole.key)
    np.testing.assert_array_equal(merged.indptr, whole.indptr)
    pdt.assert_frame_equal(merged.table(), whole.table(), check_dtype=False)


@settings(max_examples=60, deadline=None)
@given(data=rows, cuts=st.lists(st.integers(0, 40), max_size=6), oof=st.booleans(),
       buckets=st.integers(1, 9), exact=st.booleans())
def test_target_stats_merged_by_key_range(data: list, cuts: list[int], oof: bool, buckets: int,
                                          exact: bool) -> None:
    """``split_out``: each key range merged over every partition, then joined, equals the
    whole's statistics (an exact integer key and a hashed multi-column key)."""
    frame = frame_of(data)
    n_folds = 3 if oof else 1
    keys, kinds = (["i"], ["int"]) if exact else (["s", "i"], ["str", "int"])

    def stat(f: pd.DataFrame) -> TargetStats:
        folds = f["fold"].to_numpy() if oof else None
        return TargetStats.from_partition(f, keys, kinds, "y", folds, n_folds, "t")

    bounds = sorted({0, len(frame), *(c for c in cuts if c < len(frame))})
    pieces = [stat(frame.iloc[a:b]).split(buckets) for a, b in zip(bounds, bounds[1:],
                                                                      strict=False)]
    assert all(len(p) == buckets for p in pieces)
    ranges = [TargetStats.merge_many([p[b] for p in pieces], "t") for b in range(buckets)]
    merged, whole = TargetStats.concatenate(ranges), stat(frame)
    np.testing.assert_array_equal(merged.total_count, whole.total_count)
    np.testing.assert_allclose(merged.total_sum, whole.total_sum)
    np.testing.assert_array_equal(merged.key, whole.key)
    np.testing.assert_array_equal(merged.indptr, whole.indptr)
    pdt.assert_frame_equal(merged.table(), whole.table(), check_dtype=False)


def test_exact_keys_spread_evenly_over_key_ranges() -> None:
    """Consecutive integer ids (exact keys, no hashing) fill every key range about evenly."""
    frame = pd.DataFrame({"i": np.arange(80_000), "y": np.ones(80_000)})
    stats = TargetStats.from_partition(frame, ["i"], ["int"], "y", None, 1, "t")
    sizes = [len(p.key) for p in stats.split(8)]
    assert sum(sizes) == 80_000
    assert min(sizes) > 9_000 and max(sizes) < 11_000


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(-3, 3), min_size=1, max_size=200),
       targets=st.lists(st.one_of(st.none(), st.floats(-3, 3, allow_nan=False)), min_size=200,
                        max_size=200),
       folds=st.lists(st.integers(0, 3), min_size=200, max_size=200))
def test_target_stats_of_compact_ids_equal_the_sorting_path(ids: list, targets: list,
                                                            folds: list) -> None:
    """Integer ids of a compact range are counted, and merged, in tables (no sort); the same
    rows with the ids spread far apart take the sorts: the statistics agree entry for entry."""
    n = len(ids)
    y = np.array([np.nan if t is None else t for t in targets[:n]])
    fold = np.array(folds[:n], dtype=np.int64)
    compact = pd.DataFrame({"u": np.array(ids, dtype=np.int64), "y": y})
    sparse = compact.assign(u=compact["u"] * 10**12)  # far too sparse for a table

    def stats(frame: pd.DataFrame) -> TargetStats:  # three partitions, merged
        cuts = [0, n // 3, 2 * n // 3, n]
        return TargetStats.merge_many([
            TargetStats.from_partition(frame.iloc[lo:hi], ["u"], ["int"], "y", fold[lo:hi],
                                       4, "t")
            for lo, hi in zip(cuts, cuts[1:], strict=False)])

    _assert_same_by_id(stats(compact), stats(sparse))


def test_target_stats_of_compact_ids_merge_like_the_sorting_path_on_many_rows() -> None:
    """The same on partitions with many rows of one (id, fold): counts above 1 to merge."""
    rng = np.random.default_rng(5)
    n = 3_000
    ids = rng.integers(0, 40, n)
    y = np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))
    fold = rng.integers(0, 4, n)

    def stats(scale: int) -> TargetStats:
        frame = pd.DataFrame({"u": ids * scale, "y": y})
        return TargetStats.merge_many([
            TargetStats.from_partition(frame.iloc[lo:lo + 500], ["u"], ["int"], "y",
                                       fold[lo:lo + 500], 4, "t")
            for lo in range(0, n, 500)])

    compact = stats(1)
    assert compact.count.max() > 10
    _assert_same_by_id(compact, stats(10**12))


def _assert_same_by_id(a: TargetStats, b: TargetStats) -> None:
    """``a`` of ids, ``b`` of the same ids times 10**12: the same entries, id for id."""
    by_id = {}
    for s, scale in ((a, 1), (b, 10**12)):
        table = s.table()
        by_id[scale] = table.assign(u=table["u"] // scale).sort_values(["u", "__fold__"])
    pdt.assert_frame_equal(by_id[1].reset_index(drop=True)[["u", "__fold__", "count"]],
                           by_id[10**12].reset_index(drop=True)[["u", "__fold__", "count"]])
    np.testing.assert_allclose(by_id[1]["sum"].to_numpy(), by_id[10**12]["sum"].to_numpy(),
                               rtol=1e-12, atol=1e-12)
    assert np.all(a.key[1:] > a.key[:-1])  # sorted by key, as merges need
    np.testing.assert_array_equal(a.total_count, b.total_count)


@given(st.lists(st.integers(0, 12), max_size=60))
def test_merge_key_order_is_a_stable_sort(keys: list[int]) -> None:
    """The merge's fast key order (unstable sort, runs of equal keys put back in input order)
    is exactly NumPy's stable argsort: entries of a key are summed in part order."""
    from pipeline.features.stats.te_stats import _stable_key_order

    k = np.array(keys, dtype=np.uint64)
    order, sorted_keys = _stable_key_order(k)
    np.testing.assert_array_equal(order, np.argsort(k, kind="stable"))
    np.testing.assert_array_equal(sorted_keys, np.sort(k))
