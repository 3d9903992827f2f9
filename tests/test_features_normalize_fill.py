"""Normalize (float32 z-scores, nulls stay NaN) and FillMissing (constant or fitted mean)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError, DataError
from pipeline.features import FillMissing, Normalize, Workflow


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
