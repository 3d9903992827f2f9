"""FillMedian and its quantile summary: exact medians for small data, a tracked rank-error bound
for big data, whatever the split and merge order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import DataError
from pipeline.features import FillMedian, Workflow
from pipeline.features.stats.quantiles import QuantileSummary

floats = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


def summarise(x: np.ndarray, cuts: list[int], order: list[int], capacity: int) -> QuantileSummary:
    """Summaries of chunks of ``x`` merged as a random binary tree."""
    bounds = sorted({0, len(x), *(c % (len(x) + 1) for c in cuts)})
    spans = zip(bounds, bounds[1:], strict=False)
    parts = [QuantileSummary.from_values(x[a:b], capacity) for a, b in spans]
    for pick in order:
        if len(parts) == 1:
            break
        k = pick % (len(parts) - 1)
        parts[k : k + 2] = [QuantileSummary.merge(parts[k], parts[k + 1])]
    while len(parts) > 1:
        parts[-2:] = [QuantileSummary.merge(parts[-2], parts[-1])]
    return parts[0]


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(floats, min_size=1, max_size=60).filter(
        lambda v: any(x is not None for x in v)
    ),
    cuts=st.lists(st.integers(0, 60), max_size=5),
    order=st.lists(st.integers(0, 9), max_size=6),
)
def test_median_is_exact_for_small_data(values: list, cuts: list[int], order: list[int]) -> None:
    x = pd.Series(values, dtype="float64")
    summary = summarise(x.to_numpy(), cuts, order, capacity=8192)
    assert summary.exact and summary.count == x.notna().sum() and summary.nulls == x.isna().sum()
    assert summary.quantile(0.5) == x.median()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(50, 3000),
    capacity=st.sampled_from([4, 16, 64]),
    distinct=st.sampled_from([5, 100, 10_000]),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
    order=st.lists(st.integers(0, 9), max_size=8),
)
def test_compressed_median_is_within_the_rank_error_bound(
    seed: int, n: int, capacity: int, distinct: int, cuts: list[int], order: list[int]
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, distinct, n).astype(np.float64) * rng.lognormal()
    summary = summarise(x, cuts, order, capacity)
    m, err = summary.quantile(0.5), summary.rank_error
    assert summary.count == n
    # The returned value's rank interval in the data meets [n/2 - err, n/2 + err].
    assert (x <= m).sum() >= n / 2 - err
    assert (x < m).sum() <= n / 2 + err
    # The bound is small: a few n / capacity per compression level, never the whole range.
    assert err <= n
    if summary.exact:
        assert m == np.median(x)


def test_bound_stays_a_small_fraction_on_large_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(size=400_000)
    summary = summarise(x, list(range(0, 400_000, 40_000)), [], capacity=1024)
    assert not summary.exact
    assert summary.rank_error < 0.01 * len(x)
    m = summary.quantile(0.5)
    assert abs((x < m).sum() - len(x) / 2) <= summary.rank_error


def test_fill_median_op_fills_and_round_trips(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "a": [1.0, None, 3.0, 10.0],
            "b": pd.Series([1, None, 4, 6], dtype="Int64"),
            "f": np.array([1, 2, np.nan, 4], dtype=np.float32),
        }
    )
    wf = Workflow([FillMedian(["a", "b", "f"])]).fit(frame)
    out = wf.transform(frame)
    assert out["a"].tolist() == [1.0, 3.0, 3.0, 10.0]
    assert out["b"].tolist() == [1, 4, 4, 6] and str(out["b"].dtype) == "Int64"
    assert out["f"].tolist() == [1.0, 2.0, 2.0, 4.0] and out["f"].dtype == np.float32
    wf.save(tmp_path)
    loaded = Workflow.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.transform(frame), out)
    op = next(o for o in loaded.ops if isinstance(o, FillMedian))
    assert [s.count for s in op.stats_] == [3, 3, 3]


def test_all_null_and_non_numeric_columns_are_errors() -> None:
    with pytest.raises(DataError, match=r"FillMedian.*\['a'\].*no non-null"):
        Workflow([FillMedian(["a"])]).fit(pd.DataFrame({"a": [np.nan, np.nan]}))
    with pytest.raises(DataError, match=r"FillMedian.*'s'.*not numeric"):
        Workflow([FillMedian(["s"])]).fit(pd.DataFrame({"s": ["x", "y"]}))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, width=32)), max_size=300),
       capacity=st.sampled_from([4, 16, 8192]))
def test_float32_columns_summarise_as_their_float64_widening(values: list,
                                                             capacity: int) -> None:
    """Summarised in float32 (faster to sort), a column gives the very summary of its exact
    float64 widening: values, weights and error bound, compressed or not."""
    x32 = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
    a = QuantileSummary.from_values(x32, capacity)
    b = QuantileSummary.from_values(x32.astype(np.float64), capacity)
    assert a.values.dtype == np.float64
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert (a.rank_error, a.nulls) == (b.rank_error, b.nulls)
