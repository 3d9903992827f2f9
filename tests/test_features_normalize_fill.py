"""Normalize (float32 z-scores, nulls stay NaN) and FillMissing (constant or fitted mean)."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, DataError
from pipeline.features import FillMedian, FillMissing, Filter, Normalize, Workflow


def test_normalize_matches_a_pandas_reference() -> None:
    frame = pd.DataFrame({"age": [10.0, 20.0, None, 40.0], "n": [1, 2, 3, 4]})
    out = Workflow([Normalize(["age", "n"])]).fit(frame).transform(frame)
    for c in ("age", "n"):
        x = frame[c].astype("float64")
        expected = ((x - x.mean()) / x.std(ddof=0)).astype("float32")
        assert out[c].dtype == np.float32
        np.testing.assert_allclose(out[c].to_numpy(), expected.to_numpy(), rtol=1e-6)
    assert np.isnan(out["age"].iloc[2])


def test_constant_column_normalizes_to_zero() -> None:
    frame = pd.DataFrame({"x": [3.0, 3.0, None]})
    out = Workflow([Normalize(["x"])]).fit(frame).transform(frame)["x"]
    assert out.iloc[:2].tolist() == [0.0, 0.0] and np.isnan(out.iloc[2])


def test_normalize_then_fill_fills_normalized_values() -> None:
    frame = pd.DataFrame({"age": [10.0, None, 30.0]})
    wf = Workflow([Normalize(["age"]), FillMissing(["age"], value=0.0)]).fit(frame)
    out = wf.transform(frame)
    assert out["age"].tolist() == [-1.0, 0.0, 1.0]
    assert out["age"].dtype == np.float32
    assert wf.output_schema["age"]["tags"] == ["continuous"]


def test_fill_constant_and_fitted_mean() -> None:
    frame = pd.DataFrame(
        {
            "a": [1.0, None, 3.0],
            "b": pd.Series([1, None, 4], dtype="Int64"),
            "s": pd.Series(["x", None, "y"], dtype="str"),
        }
    )
    wf = Workflow([FillMissing(["a", "b"], value=None), FillMissing(["s"], value="unknown")])
    out = wf.fit(frame).transform(frame)
    assert out["a"].tolist() == [1.0, 2.0, 3.0]
    assert out["b"].tolist() == [1.0, 2.5, 4.0]  # a non-integer mean makes Int64 float64
    assert out["b"].dtype == np.float64
    assert out["s"].tolist() == ["x", "unknown", "y"]
    const = Workflow([FillMissing(["a"], value=-1)]).fit(frame).transform(frame)
    assert const["a"].tolist() == [1.0, -1.0, 3.0]


def test_non_numeric_column_is_a_data_error() -> None:
    frame = pd.DataFrame({"s": ["a", "b"]})
    with pytest.raises(DataError, match=r"Normalize.*'s'.*not numeric"):
        Workflow([Normalize(["s"])]).fit(frame)
    with pytest.raises(DataError, match="'s'"):
        Workflow([FillMissing(["s"], value=None)]).fit(frame)


def test_a_learning_op_after_a_replacing_op_is_rejected() -> None:
    with pytest.raises(ConfigError, match="learns statistics on column 'age'"):
        Workflow([FillMissing(["age"], value=0.0), Normalize(["age"])])
    with pytest.raises(ConfigError):
        FillMissing(["age"], value=[1])  # type: ignore[arg-type]


def _filled_reference(frame: pd.DataFrame, fill: str) -> pd.DataFrame:
    """The filled columns as the two-pass fit saw them (fill op alone, then pandas moments)."""
    op = FillMedian(list(frame.columns)) if fill == "median" else FillMissing(
        list(frame.columns), value=None)
    return Workflow([op]).fit(frame).transform(frame)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False, width=32)),
                    min_size=2, max_size=60),
    ints=st.lists(st.one_of(st.none(), st.integers(-50, 50)), min_size=2, max_size=60),
    fill=st.sampled_from(["median", "mean"]),
    npartitions=st.integers(1, 4),
)
def test_normalize_after_a_fill_is_fitted_in_the_fills_pass(
    values: list, ints: list, fill: str, npartitions: int
) -> None:
    """``cols >> Fill >> Normalize`` takes one pass (the fill's), and its moments equal those
    of the filled columns: float32 columns (the fill lands as float32) and nullable integers
    (a .5 median turns them float)."""
    n = min(len(values), len(ints))
    frame = pd.DataFrame({"x": pd.Series(values[:n], dtype="float32"),
                          "k": pd.Series(ints[:n], dtype="Int64")})
    assume(frame["x"].notna().any() and frame["k"].notna().any())
    filler = FillMedian(None) if fill == "median" else FillMissing(None, value=None)
    wf = Workflow(["x", "k"] >> filler >> Normalize(None))
    wf.fit(dd.from_pandas(frame, npartitions=npartitions))
    plan = wf.plan
    assert len(plan.levels()) == 1 and plan.fused_fills()
    filled = _filled_reference(frame, fill)
    normalize = plan.steps[-1].op
    for j, c in enumerate(["x", "k"]):
        x = filled[c].to_numpy(dtype=np.float64)
        np.testing.assert_allclose(normalize.moments_.mean[j], x.mean(), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(normalize.moments_.std[j], x.std(), rtol=1e-7, atol=1e-9)
        assert normalize.moments_.count[j] == n


def test_fills_are_not_fused_past_a_row_filter_or_a_raw_column() -> None:
    """Fusion needs every column the step reads to be filled, and every row to stay."""
    frame = pd.DataFrame({"x": [1.0, None, 3.0, 4.0], "y": [1.0, 2.0, None, 8.0]})
    mixed = Workflow((["x"] >> FillMedian(None)) + ["y"] >> Normalize(None))
    assert mixed.fit(frame).plan.fused_fills() == {}
    assert len(mixed.plan.levels()) == 2
    both = Workflow(["x", "y"] >> FillMedian(None) >> Normalize(None)).fit(frame)
    assert both.plan.fused_fills() and len(both.plan.levels()) == 1
    dropped = Workflow(
        (["y"] >> Filter(None, ">", 0.5)) + (["x"] >> FillMedian(None) >> Normalize(None))
    ).fit(frame)
    assert dropped.plan.fused_fills() == {} and len(dropped.plan.levels()) == 2
