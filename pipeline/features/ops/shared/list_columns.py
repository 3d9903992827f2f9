"""List (multi-hot) columns for Categorify: flatten to one value per element, encode, rebuild.

A list column has a pyarrow list dtype (``pd.ArrowDtype(pa.list_(...))``, what Parquet list
columns read as with ``dtype_backend="pyarrow"``). Its elements are counted like a plain column's
values; the output is ``list<int64>`` with the same list lengths, null elements -> 1 (null index)
and null lists kept null.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import DataError

OUTPUT_DTYPE = pd.ArrowDtype(pa.list_(pa.int64()))


def element_dtype(dtype: Any) -> Any | None:
    """The element dtype of a list column's dtype, or None for a plain column."""
    if isinstance(dtype, pd.ArrowDtype):
        t = dtype.pyarrow_dtype
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            return pd.ArrowDtype(t.value_type)
    return None


def flatten(series: pd.Series) -> tuple[pa.Array, pd.Series]:
    """(the column as a pyarrow list array, its elements as one flat Series)."""
    arr = pa.array(series)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    values = pc.list_flatten(arr)
    return arr, pd.Series(values.to_pandas(types_mapper=pd.ArrowDtype), name=series.name)


def rebuild(arr: pa.Array, codes: np.ndarray) -> Any:
    """A ``list<int64>`` array shaped like ``arr`` holding ``codes`` (one per element)."""
    offsets = pc.subtract(arr.offsets, arr.offsets[0]).cast(pa.int32())
    out = pa.ListArray.from_arrays(offsets, pa.array(codes, type=pa.int64()), mask=arr.is_null())
    return pd.array(out, dtype=OUTPUT_DTYPE) if len(out) else pd.array([], dtype=OUTPUT_DTYPE)


def reject_python_lists(series: pd.Series, where: str) -> None:
    """Object columns of Python lists would be encoded as their text: say how to fix it."""
    if series.dtype != object:
        return
    present = series.dropna()
    if len(present) and pd.api.types.is_list_like(present.iloc[0]):
        raise DataError(
            f"{where}: column {series.name!r} holds Python lists in an object column; give it a "
            "pyarrow list dtype, e.g. series.astype(pd.ArrowDtype(pa.list_(pa.string()))), or "
            "read Parquet with dtype_backend='pyarrow'"
        )
