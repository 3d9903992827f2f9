"""FillMedian: replace nulls with each column's median, learned as a distributed quantile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from pipeline.errors import ConfigError

from ..backend import float_values
from ..base import ColumnSchema, InPlaceOp, NotFittedError, PartitionContext, column_list
from ..op_spec import OpSpec
from ..stats.quantiles import DEFAULT_CAPACITY, QuantileSummary
from .fill import fill_column
from .shared.column_checks import require_numeric, require_values


class FillMedian(InPlaceOp):
    """Fill nulls in place with the column's median.

    Each partition contributes a ``QuantileSummary`` (exact value counts up to ``capacity``
    distinct values, a compressed summary beyond); summaries merge in the workflow's tree
    reduction. The median is exact (pandas' ``median``) while the merged summary is exact, and
    otherwise a value whose rank is within ``rank_error`` rows (saved with the state, at most a
    few ``n / capacity``) of the middle. Dtypes follow ``FillMissing``.

    >>> frame = pd.DataFrame({"age": [20.0, None, 30.0, 90.0]})
    >>> Workflow(["age"] >> FillMedian(None)).fit(frame).transform(frame)["age"].tolist()
    [20.0, 30.0, 30.0, 90.0]
    """

    type_name = "FillMedian"
    fills_nulls = True

    class Spec(OpSpec):
        op: Literal["fill_median"]
        columns: list[str] = Field(min_length=1)
        capacity: int = Field(8192, ge=2, description="exact up to this many distinct values")

    def __init__(self, columns: str | Sequence[str], capacity: int = DEFAULT_CAPACITY) -> None:
        self.columns = column_list(columns, "FillMedian")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 2:
            raise ConfigError(f"FillMedian: capacity must be an int >= 2, got {capacity!r}")
        self.capacity = capacity
        self.stats_: tuple[QuantileSummary, ...] | None = None
        self.medians_: dict[str, float] | None = None

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "capacity": self.capacity}

    @property
    def fitted(self) -> bool:
        return self.medians_ is not None

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        require_numeric(dtypes, self.columns, self._where())

    def partition_stats(
        self, frame: pd.DataFrame, ctx: PartitionContext
    ) -> tuple[QuantileSummary, ...]:
        return tuple(
            QuantileSummary.from_values(float_values(frame[c], keep_float32=True), self.capacity)
            for c in self.columns
        )

    def merge_stats(
        self, a: tuple[QuantileSummary, ...], b: tuple[QuantileSummary, ...]
    ) -> tuple[QuantileSummary, ...]:
        return tuple(QuantileSummary.merge(x, y) for x, y in zip(a, b, strict=True))

    def finish_fit(self, stats: tuple[QuantileSummary, ...]) -> None:
        require_values([s.count for s in stats], self.columns, self._where())
        self.stats_ = tuple(stats)
        self.medians_ = {c: s.quantile(0.5) for c, s in zip(self.columns, stats, strict=True)}

    def fill_values(self) -> dict[str, float]:
        """The value each column's nulls become."""
        if self.medians_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        return dict(self.medians_)

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        if self.medians_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        return {c: fill_column(frame[c], m) for c, m in self.medians_.items()}

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": [], "cardinality": None}

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        if self.stats_ is None or self.medians_ is None:
            raise NotFittedError(f"{self._where()} is not fitted")
        state = {
            c: {"median": self.medians_[c], "rank_error": s.rank_error, "nulls": s.nulls}
            for c, s in zip(self.columns, self.stats_, strict=True)
        }
        tables = {c: s.table() for c, s in zip(self.columns, self.stats_, strict=True)}
        return {"columns": state}, tables

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        cols = state["columns"]
        self.stats_ = tuple(
            QuantileSummary.from_table(
                tables[c], cols[c]["rank_error"], cols[c]["nulls"], self.capacity
            )
            for c in self.columns
        )
        self.medians_ = {c: float(cols[c]["median"]) for c in self.columns}
