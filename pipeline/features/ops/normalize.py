"""Normalize: standardise numeric columns in place to float32 z-scores; nulls stay NaN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..backend import float_values
from ..base import ColumnSchema, InPlaceOp, NotFittedError, PartitionContext, column_list
from ..op_spec import OpSpec
from ..stats.moments import Moments
from .shared.column_checks import require_numeric, require_values


class Normalize(InPlaceOp):
    """``(x - mean) / std`` with the population std; a constant column maps to 0."""

    type_name = "Normalize"
    absorbs_fills = True

    class Spec(OpSpec):
        op: Literal["normalize"]
        columns: list[str] = Field(min_length=1)

    def __init__(self, columns: str | Sequence[str]) -> None:
        self.columns = column_list(columns, "Normalize")
        self.moments_: Moments | None = None

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}

    @property
    def fitted(self) -> bool:
        return self.moments_ is not None

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        require_numeric(dtypes, self.columns, self._where())

    def partition_stats(self, frame: pd.DataFrame, ctx: PartitionContext) -> Moments:
        return Moments.from_partition(frame, self.columns)

    def merge_stats(self, a: Moments, b: Moments) -> Moments:
        return Moments.merge(a, b)

    def stats_after_fill(self, stats: Moments, rows: int, fills: Mapping[str, float]) -> Moments:
        """Each column's ``rows - count`` nulls became its fill value: Chan's merge of the
        non-null moments with a block of that many copies of it (zero spread)."""
        values = np.array([fills[c] for c in self.columns], dtype=np.float64)
        filled = Moments(stats.columns, rows - stats.count, values, np.zeros(len(values)))
        return Moments.merge(stats, filled)

    def finish_fit(self, stats: Moments) -> None:
        require_values(stats.count, self.columns, self._where())
        self.moments_ = stats

    @property
    def stats_(self) -> Moments | None:
        """The merged statistics (what an incremental refit merges new partitions into)."""
        return self.moments_

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        if self.moments_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        std = self.moments_.std
        scale = np.where(std > 0, std, 1.0)
        return {
            c: ((float_values(frame[c]) - self.moments_.mean[i]) / scale[i]).astype(np.float32)
            for i, c in enumerate(self.columns)
        }

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": ["continuous"], "cardinality": None}

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        if self.moments_ is None:
            raise NotFittedError(f"{self._where()} is not fitted")
        return {}, {"moments": self.moments_.table()}

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        self.moments_ = Moments.from_table(tables["moments"], self.columns)
