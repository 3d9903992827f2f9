"""The one place that knows which DataFrame library holds a partition.

Ops call these helpers instead of branching on pandas vs cuDF. pandas is the only backend in use
today; cuDF is recognised lazily (never imported unless a cuDF object shows up) and is moved to
host memory, so a GPU backend can later replace these few functions without touching the ops.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "is_frame",
    "to_pandas",
    "hash_values",
    "float_values",
    "row_hashes",
]


def _is_cudf(obj: Any) -> bool:
    """True for a cuDF object, decided by its module so cuDF is never imported needlessly."""
    return type(obj).__module__.split(".", 1)[0] == "cudf"


def is_frame(obj: Any) -> bool:
    """True for an in-memory (not Dask) DataFrame of a supported backend."""
    return isinstance(obj, pd.DataFrame) or (_is_cudf(obj) and hasattr(obj, "to_pandas"))


def to_pandas(frame: Any) -> pd.DataFrame:
    """The frame as pandas; cuDF partitions are copied to host (a GPU path would skip this)."""
    if isinstance(frame, pd.DataFrame):
        return frame
    if _is_cudf(frame):
        return frame.to_pandas()
    raise TypeError(f"expected a pandas or cuDF DataFrame, got {type(frame).__name__}")


def hash_values(values: np.ndarray) -> np.ndarray:
    """Stable uint64 hashes (same on every process, platform and run; unlike Python's hash)."""
    if values.dtype == object:
        return pd.util.hash_array(values, categorize=False)
    return pd.util.hash_array(np.ascontiguousarray(values), categorize=False)


def float_values(series: pd.Series) -> np.ndarray:
    """A numeric column as a float64 array with NaN for nulls (works for nullable dtypes too)."""
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One stable uint64 per row from its values (columns in name order; the index is ignored)."""
    ordered = frame[sorted(frame.columns, key=str)]
    return pd.util.hash_pandas_object(ordered, index=False).to_numpy(dtype=np.uint64)
