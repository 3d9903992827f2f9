"""Normalize: standardise numeric columns in place to float32 z-scores; nulls stay NaN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..backend import float_values
from ..base import ColumnSchema, PartitionContext, column_list
from ..op_spec import OpSpec
from ..stats.moments import Moments
from .shared.column_stats import ColumnStatsOp


class Normalize(ColumnStatsOp):
    """``(x - mean) / std`` with the population std; a constant column maps to 0.

    >>> frame = pd.DataFrame({"price": [1.0, 2.0, 3.0, None]})
    >>> Workflow(["price"] >> Normalize(None)).fit(frame).transform(frame)["price"].tolist()
    [-1.22474..., 0.0, 1.22474..., nan]
    """

    type_name = "Normalize"
    absorbs_fills = True
    statistic = Moments
    table_name = "moments"

    class Spec(OpSpec):
        op: Literal["normalize"]
        columns: list[str] = Field(min_length=1)

    def __init__(self, columns: str | Sequence[str]) -> None:
        self.columns = column_list(columns, "Normalize")
        self.stats_: Moments | None = None

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}

    @property
    def moments_(self) -> Moments | None:
        """The fitted moments (``stats_``)."""
        return self.stats_

    def stats_after_fill(self, stats: Moments, rows: int, fills: Mapping[str, float]) -> Moments:
        """Each column's ``rows - count`` nulls became its fill value: Chan's merge of the
        non-null moments with a block of that many copies of it (zero spread)."""
        values = np.array([fills[c] for c in self.columns], dtype=np.float64)
        filled = Moments(stats.columns, rows - stats.count, values, np.zeros(len(values)))
        return Moments.merge(stats, filled)

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        moments = self._fitted_stats()
        std = moments.std
        scale = np.where(std > 0, std, 1.0)
        return {
            c: ((float_values(frame[c]) - moments.mean[i]) / scale[i]).astype(np.float32)
            for i, c in enumerate(self.columns)
        }

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": ["continuous"], "cardinality": None}
