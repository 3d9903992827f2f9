"""NormalizeMinMax: scale numeric columns to [0, 1] with their fitted min and max, in place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..backend import float_values
from ..base import ColumnSchema, PartitionContext, column_list
from ..op_spec import OpSpec
from ..stats.extremes import Extremes
from .shared.column_stats import ColumnStatsOp


class NormalizeMinMax(ColumnStatsOp):
    """``(x - min) / (max - min)`` as float32; a constant column maps to 0, nulls stay NaN.
    Serving values outside the fitted range fall outside [0, 1] (add a Clip if that matters).

    >>> frame = pd.DataFrame({"age": [20, 30, 60]})
    >>> Workflow(["age"] >> NormalizeMinMax(None)).fit(frame).transform(frame)["age"].tolist()
    [0.0, 0.25, 1.0]
    """

    type_name = "NormalizeMinMax"
    statistic = Extremes
    table_name = "extremes"

    class Spec(OpSpec):
        op: Literal["normalize_minmax"]
        columns: list[str] = Field(min_length=1)

    def __init__(self, columns: str | Sequence[str] | None) -> None:
        self.columns = column_list(columns, "NormalizeMinMax")
        self.stats_: Extremes | None = None

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        extremes = self._fitted_stats()
        span = extremes.high - extremes.low
        scale = np.where(span > 0, span, 1.0)
        return {
            c: ((float_values(frame[c]) - extremes.low[i]) / scale[i]).astype(np.float32)
            for i, c in enumerate(self.columns)
        }

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": ["continuous"], "cardinality": None}
