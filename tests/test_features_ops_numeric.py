"""LogOp, Clip, Bucketize, NormalizeMinMax against plain pandas/numpy references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, DataError
from pipeline.features import Bucketize, Clip, LogOp, NormalizeMinMax, Workflow

column = st.lists(
    st.one_of(st.none(), st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)),
    min_size=1,
    max_size=40,
).filter(lambda v: any(x is not None for x in v))


def run(op, frame: pd.DataFrame) -> pd.DataFrame:
    return Workflow([op]).fit(frame).transform(frame)


@settings(max_examples=40, deadline=None)
@given(values=column)
def test_log_op(values: list) -> None:
    frame = pd.DataFrame({"x": pd.Series(values, dtype="float64").abs()})
    out = run(LogOp(["x"]), frame)["x"]
    expected = np.log1p(frame["x"]).astype("float32")
    assert out.dtype == np.float32
    pd.testing.assert_series_equal(out, expected)


@settings(max_examples=40, deadline=None)
@given(values=column, lo=st.integers(-100, 0), width=st.integers(0, 200))
def test_clip_keeps_dtype(values: list, lo: int, width: int) -> None:
    frame = pd.DataFrame({"x": pd.Series(values, dtype="float64"), "i": np.arange(len(values))})
    out = run(Clip(["x", "i"], min_value=lo, max_value=lo + width), frame)
    pd.testing.assert_series_equal(out["x"], frame["x"].clip(lo, lo + width))
    pd.testing.assert_series_equal(out["i"], frame["i"].clip(lo, lo + width))
    assert out["i"].dtype == np.int64
    # A fractional bound turns an integer column into float64, from the dtype alone.
    assert run(Clip(["i"], max_value=2.5), frame)["i"].dtype == np.float64


@settings(max_examples=40, deadline=None)
@given(values=column, bounds=st.lists(st.integers(-50, 50), min_size=1, max_size=5, unique=True))
def test_bucketize(values: list, bounds: list[int]) -> None:
    bounds = sorted(bounds)
    frame = pd.DataFrame({"x": pd.Series(values, dtype="float64")})
    wf = Workflow([Bucketize(["x"], bounds)]).fit(frame)
    out = wf.transform(frame)["x"]
    # Reference: pandas.cut with left-closed bins, shifted past 0 (pad) and 1 (null).
    edges = [-np.inf, *bounds, np.inf]
    ref = pd.cut(frame["x"], edges, right=False, labels=False)
    expected = np.where(frame["x"].isna(), 1, ref.fillna(-1) + 2).astype(np.int64)
    np.testing.assert_array_equal(out.to_numpy(), expected)
    assert out.dtype == np.int64
    assert wf.output_schema["x"]["cardinality"] == len(bounds) + 3
    assert "categorical" in wf.output_schema["x"]["tags"]


@settings(max_examples=40, deadline=None)
@given(values=column, cut=st.integers(0, 40))
def test_minmax_matches_pandas_and_merges(values: list, cut: int) -> None:
    frame = pd.DataFrame({"x": pd.Series(values, dtype="float64")})
    op = NormalizeMinMax(["x"])
    out = run(op, frame)["x"]
    lo, hi = frame["x"].min(), frame["x"].max()
    expected = ((frame["x"] - lo) / (hi - lo if hi > lo else 1.0)).astype("float32")
    pd.testing.assert_series_equal(out, expected)
    # Statistics of any split merge to the whole's.
    ctx = None
    a = op.partition_stats(frame.iloc[:cut], ctx)
    b = op.partition_stats(frame.iloc[cut:], ctx)
    merged = op.merge_stats(a, b)
    assert (merged.low[0], merged.high[0], merged.count[0]) == (lo, hi, frame["x"].count())


def test_bad_input_names_column_and_op() -> None:
    text = pd.DataFrame({"s": ["a", "b"]})
    for op in (LogOp(["s"]), Clip(["s"], min_value=0), Bucketize(["s"], [1]),
               NormalizeMinMax(["s"])):
        with pytest.raises(DataError, match=rf"{type(op).__name__}.*'s'.*not numeric"):
            Workflow([op]).fit(text)
    with pytest.raises(DataError, match=r"NormalizeMinMax.*\['x'\].*no non-null"):
        Workflow([NormalizeMinMax(["x"])]).fit(pd.DataFrame({"x": [np.nan]}))
    with pytest.raises(DataError, match="missing"):
        Workflow([LogOp(["nope"])]).fit(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(DataError, match="empty"):
        Workflow([NormalizeMinMax(["x"])]).fit(pd.DataFrame({"x": pd.Series([], dtype=float)}))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Clip(["x"]),
        lambda: Clip(["x"], min_value=2, max_value=1),
        lambda: Bucketize(["x"], [2, 1]),
        lambda: Bucketize(["x"], []),
        lambda: Bucketize(["x", "y"], {"x": [1]}),
    ],
)
def test_bad_parameters(build) -> None:
    with pytest.raises(ConfigError):
        build()
