"""Checks of an op's input columns that name the column and the fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pandas.api import types as ptypes

from pipeline.errors import DataError


def require_numeric(dtypes: Mapping[str, Any], columns: Sequence[str], where: str) -> None:
    """A clear error when a column that needs numbers holds something else."""
    for c in columns:
        dtype = dtypes[c]
        if not ptypes.is_numeric_dtype(dtype) or ptypes.is_complex_dtype(dtype):
            raise DataError(
                f"{where}: column {c!r} has dtype {dtype}, not numeric; cast it to a number "
                "or use Categorify for categorical columns"
            )


def require_values(count: np.ndarray, columns: Sequence[str], where: str) -> None:
    """A clear error when a column had no non-null value at all in the fitting data."""
    empty = [c for c, n in zip(columns, count, strict=True) if n == 0]
    if empty:
        raise DataError(
            f"{where}: column(s) {empty!r} have no non-null values in the fitting data, so "
            "there is nothing to learn from; drop them from the op or check the input"
        )
