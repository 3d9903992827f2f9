"""NormalizeMinMax: scale numeric columns to [0, 1] with their fitted min and max, in place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..backend import float_values
from ..base import ColumnSchema, InPlaceOp, NotFittedError, PartitionContext, column_list
from ..op_spec import OpSpec
from .shared.column_checks import require_numeric, require_values


@dataclass(frozen=True)
class Extremes:
    """Per column: non-null count, min and max (merged exactly, in any order)."""

    count: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_partition(cls, frame: pd.DataFrame, columns: Sequence[str]) -> Extremes:
        x = np.column_stack([float_values(frame[c]) for c in columns]) if len(frame) else None
        if x is None:
            n = len(columns)
            return cls(np.zeros(n, np.int64), np.full(n, np.inf), np.full(n, -np.inf))
        present = ~np.isnan(x)
        return cls(
            present.sum(axis=0).astype(np.int64),
            np.where(present, x, np.inf).min(axis=0),
            np.where(present, x, -np.inf).max(axis=0),
        )

    @staticmethod
    def merge(a: Extremes, b: Extremes) -> Extremes:
        return Extremes(a.count + b.count, np.minimum(a.low, b.low), np.maximum(a.high, b.high))

    def table(self, columns: Sequence[str]) -> pd.DataFrame:
        return pd.DataFrame(
            {"column": list(columns), "count": self.count, "min": self.low, "max": self.high}
        )

    @classmethod
    def from_table(cls, table: pd.DataFrame, columns: Sequence[str]) -> Extremes:
        rows = table.set_index("column").loc[list(columns)]
        return cls(rows["count"].to_numpy(np.int64), rows["min"].to_numpy(np.float64),
                   rows["max"].to_numpy(np.float64))


class NormalizeMinMax(InPlaceOp):
    """``(x - min) / (max - min)`` as float32; a constant column maps to 0, nulls stay NaN.
    Serving values outside the fitted range fall outside [0, 1] (add a Clip if that matters)."""

    type_name = "NormalizeMinMax"

    class Spec(OpSpec):
        op: Literal["normalize_minmax"]
        columns: list[str] = Field(min_length=1)

    def __init__(self, columns: str | Sequence[str] | None) -> None:
        self.columns = column_list(columns, "NormalizeMinMax")
        self.stats_: Extremes | None = None

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}

    @property
    def fitted(self) -> bool:
        return self.stats_ is not None

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        require_numeric(dtypes, self.columns, self._where())

    def partition_stats(self, frame: pd.DataFrame, ctx: PartitionContext) -> Extremes:
        return Extremes.from_partition(frame, self.columns)

    def merge_stats(self, a: Extremes, b: Extremes) -> Extremes:
        return Extremes.merge(a, b)

    def finish_fit(self, stats: Extremes) -> None:
        require_values(stats.count, self.columns, self._where())
        self.stats_ = stats

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        if self.stats_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        span = self.stats_.high - self.stats_.low
        scale = np.where(span > 0, span, 1.0)
        return {
            c: ((float_values(frame[c]) - self.stats_.low[i]) / scale[i]).astype(np.float32)
            for i, c in enumerate(self.columns)
        }

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": ["continuous"], "cardinality": None}

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        if self.stats_ is None:
            raise NotFittedError(f"{self._where()} is not fitted")
        return {}, {"extremes": self.stats_.table(self.columns)}

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        self.stats_ = Extremes.from_table(tables["extremes"], self.columns)
