"""Canonical values for categorical keys (Categorify vocabularies, TargetEncoding groups).

A key column is fitted as one *kind* (int, float, bool or str) and every later frame is cast to
that kind before lookup or hashing. That keeps train/serve parity when a serving frame arrives
with another spelling of the same values: ``str`` vs ``string[pyarrow]``, ``int64`` vs a float
column that only holds whole numbers, ``object`` vs ``str``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes

from pipeline.errors import DataError

from ..backend import hash_values

KeyKind = Literal["int", "float", "bool", "str"]
KEY_KINDS: tuple[KeyKind, ...] = ("int", "float", "bool", "str")
STR_DTYPE = pd.StringDtype(na_value=np.nan)  # pandas 3's default ``str`` dtype

_NUMPY_DTYPES = {"int": np.dtype(np.int64), "float": np.dtype(np.float64), "bool": np.dtype(bool)}


def is_string_dictionary(dtype: object) -> bool:
    """An Arrow dictionary of strings: how ``parquet_reader`` delivers string columns."""
    if not isinstance(dtype, pd.ArrowDtype) or not pa.types.is_dictionary(dtype.pyarrow_dtype):
        return False
    value = dtype.pyarrow_dtype.value_type
    return pa.types.is_string(value) or pa.types.is_large_string(value)


def is_text_dtype(dtype: object) -> bool:
    """Strings, however stored (object, ``str``, Arrow, an Arrow dictionary of strings)."""
    return is_string_dictionary(dtype) or ptypes.is_string_dtype(dtype)


def key_kind(dtype: object, column: str, where: str) -> KeyKind:
    """The kind a categorical column is fitted as; a clear error for dtypes that cannot be keys."""
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if is_string_dictionary(dtype):
        return "str"
    if ptypes.is_bool_dtype(dtype):
        return "bool"
    if ptypes.is_integer_dtype(dtype):
        return "int"
    if ptypes.is_float_dtype(dtype):
        return "float"
    if ptypes.is_string_dtype(dtype):
        return "str"
    raise DataError(
        f"{where}: column {column!r} has dtype {dtype}, which cannot be used as a categorical key; "
        "cast it to int64 or str first"
    )


def fitted_kinds(
    dtypes: Mapping[str, Any], columns: Sequence[str], where: str
) -> dict[str, KeyKind]:
    """``key_kind`` of each of ``columns``: what an op keyed on them learns in ``prepare``."""
    return {c: key_kind(dtypes[c], c, where) for c in columns}


def canonical(series: pd.Series, kind: KeyKind, where: str) -> tuple[np.ndarray, pd.Index]:
    """Split a column into (null mask, canonical values of its non-null rows).

    The values come back as a ``pd.Index`` of the fitted kind, ready for ``get_indexer``,
    ``groupby`` and hashing.
    """
    series = _decategorized(series)
    # On the column's array, not the Series: filtering a Series also builds an index of the
    # kept positions.
    array = series.array
    null = np.asarray(array.isna(), dtype=bool)
    present = array[~null] if null.any() else array
    is_text = ptypes.is_string_dtype(series.dtype)
    if kind == "str":
        if not is_text:
            raise _mismatch(series, kind, where)
        return null, pd.Index(present.astype(STR_DTYPE), dtype=STR_DTYPE)
    if is_text and series.dtype != object:
        raise _mismatch(series, kind, where)
    try:
        values = present.to_numpy()
        if values.dtype == object:  # object column holding numbers (or strings: caught below)
            values = np.asarray(values.tolist()) if len(values) else values.astype(np.float64)
        if kind == "int" and values.dtype.kind == "f":  # whole numbers (a column with nulls)
            with np.errstate(invalid="ignore"):  # inf, or past int64: caught by the comparison
                whole = values.astype(np.int64)
            if not (whole == values).all():
                raise _mismatch(series, kind, where, "it holds non-integer values")
            values = whole
        if kind == "bool" and values.dtype.kind != "b":
            raise _mismatch(series, kind, where)
        if values.dtype.kind not in "biuf":
            raise _mismatch(series, kind, where)
        values = values.astype(_NUMPY_DTYPES[kind], copy=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _mismatch(series, kind, where) from exc
    # No copy: the values are this call's own, or the column's, which nothing writes to.
    return null, pd.Index(values, dtype=_NUMPY_DTYPES[kind], copy=False)


def canonical_strings(series: pd.Series, where: str) -> tuple[np.ndarray, pa.Array]:
    """``canonical`` for the ``str`` kind, nulls kept in place: (null mask, the whole column as
    one Arrow string array), for Arrow's kernels, which take nulls in stride (dropping them
    first copied every string of the column)."""
    series = _decategorized(series)
    if not ptypes.is_string_dtype(series.dtype):
        raise _mismatch(series, "str", where)
    strings = pa.array(series.astype(STR_DTYPE).array)
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    return np.asarray(strings.is_null().to_numpy(zero_copy_only=False), dtype=bool), strings


def _decategorized(series: pd.Series) -> pd.Series:
    """A categorical or dictionary-encoded column as its values (keys are compared by value,
    never by code)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype(series.dtype.categories.dtype if not series.hasnans else object)
    if is_string_dictionary(series.dtype):
        decoded = _arrow(series).cast(pa.large_string())
        return pd.Series(pd.array(decoded, dtype=STR_DTYPE), index=series.index, name=series.name,
                         copy=False)
    return series


def string_dictionary(series: pd.Series) -> tuple[np.ndarray, pa.Array] | None:
    """(each row's code into the distinct values; the distinct values) of a dictionary-encoded
    string column, None for any other. A null row has code ``len(values)``, one past the end.
    The values may repeat (Arrow allows it); a null among them is a null row's value."""
    if not is_string_dictionary(series.dtype):
        return None
    array = _arrow(series)
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks != 1:  # chunks with dictionaries of their own: one for all
            array = array.unify_dictionaries()
            dictionary = (array.chunk(0).dictionary if array.num_chunks
                          else pa.array([], type=array.type.value_type))
            indices = pa.concat_arrays([c.indices for c in array.chunks]
                                       or [pa.array([], type=array.type.index_type)])
            array = pa.DictionaryArray.from_arrays(indices, dictionary)
        else:
            array = array.chunk(0)
    dictionary = array.dictionary
    codes = pc.fill_null(array.indices, len(dictionary)).to_numpy()
    if dictionary.null_count:  # rows pointing at a null entry are null rows
        null_entry = np.append(dictionary.is_null().to_numpy(zero_copy_only=False), False)
        codes = np.where(null_entry[codes], len(dictionary), codes)
    return codes, dictionary


def _arrow(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The Arrow data behind an Arrow-backed column (no copy)."""
    return pa.array(series.array)


def hash_keys(values: pd.Index) -> np.ndarray:
    """Stable uint64 hashes of canonical key values."""
    if isinstance(values.dtype, pd.StringDtype):
        return hash_values(values.to_numpy(dtype=object))
    return hash_values(values.to_numpy())


def empty_keys(kind: KeyKind) -> pd.Index:
    """An empty canonical index of a kind (dtype-stable starting point for merges)."""
    return pd.Index([], dtype=STR_DTYPE if kind == "str" else _NUMPY_DTYPES[kind])


def _mismatch(series: pd.Series, kind: KeyKind, where: str, why: str = "") -> DataError:
    detail = f" ({why})" if why else ""
    return DataError(
        f"{where}: column {series.name!r} was fitted on {kind} values but this frame has dtype "
        f"{series.dtype}{detail}; cast it to the training dtype before transforming"
    )
