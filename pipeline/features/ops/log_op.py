"""LogOp: ``log1p`` of numeric columns, in place, as float32 (long-tailed counts, prices)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..backend import float_values
from ..base import ColumnSchema, PartitionContext, column_list
from ..op_spec import OpSpec
from .shared.numeric_map import NumericMapOp


class LogOp(NumericMapOp):
    """``log(1 + x)`` as float32; nulls stay NaN, values below -1 give NaN (as numpy's log1p).

    >>> frame = pd.DataFrame({"views": [0, 9, 99]})
    >>> Workflow(["views"] >> LogOp(None)).fit(frame).transform(frame)["views"].tolist()
    [0.0, 2.30258..., 4.60517...]
    """

    type_name = "LogOp"

    class Spec(OpSpec):
        op: Literal["log"]
        columns: list[str] = Field(min_length=1)

    def __init__(self, columns: str | Sequence[str] | None) -> None:
        self.columns = column_list(columns, "LogOp")

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return {c: np.log1p(float_values(frame[c])).astype(np.float32) for c in self.columns}

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": ["continuous"], "cardinality": None}
