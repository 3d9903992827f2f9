"""Clip: bound numeric columns to ``[min_value, max_value]`` in place (outliers, bad sensors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pydantic import Field

from pipeline.errors import ConfigError

from ..base import ColumnSchema, PartitionContext, column_list
from ..op_spec import OpSpec
from .shared.numeric_map import NumericMapOp


class Clip(NumericMapOp):
    """Clip values; nulls stay null. The dtype is kept, except that an integer column with a
    non-integer bound becomes float64 (decided from dtype and bounds alone: partitions agree).

    >>> frame = pd.DataFrame({"price": [-5.0, 10.0, 1e9]})
    >>> bounded = ["price"] >> Clip(None, min_value=0, max_value=1000)
    >>> Workflow(bounded).fit(frame).transform(frame)["price"].tolist()
    [0.0, 10.0, 1000.0]
    """

    type_name = "Clip"

    class Spec(OpSpec):
        op: Literal["clip"]
        columns: list[str] = Field(min_length=1)
        min_value: float | None = None
        max_value: float | None = None

    def __init__(
        self,
        columns: str | Sequence[str] | None,
        min_value: float | None = None,
        max_value: float | None = None,
    ) -> None:
        self.columns = column_list(columns, "Clip")
        for name, v in (("min_value", min_value), ("max_value", max_value)):
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v)
            ):
                raise ConfigError(f"Clip: {name} must be a finite number or None, got {v!r}")
        if min_value is None and max_value is None:
            raise ConfigError("Clip: give min_value, max_value or both")
        if min_value is not None and max_value is not None and min_value > max_value:
            raise ConfigError(f"Clip: min_value {min_value} is above max_value {max_value}")
        self.min_value = min_value
        self.max_value = max_value

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "min_value": self.min_value,
                "max_value": self.max_value}

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        bounds = [b for b in (self.min_value, self.max_value) if b is not None]
        fractional = any(isinstance(b, float) and not b.is_integer() for b in bounds)
        out = {}
        for c in self.columns:
            s = frame[c]
            if ptypes.is_integer_dtype(s.dtype) or ptypes.is_bool_dtype(s.dtype):
                s = s.astype(np.float64) if fractional else s
                lo, hi = (None if b is None else (b if fractional else int(b))
                          for b in (self.min_value, self.max_value))
            else:
                lo, hi = self.min_value, self.max_value
            out[c] = s.clip(lower=lo, upper=hi).astype(s.dtype).array
        return out

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": [], "cardinality": None, "min": self.min_value, "max": self.max_value}
