"""The base of ops fitted from one mergeable statistic of their columns (Normalize,
NormalizeMinMax, FillMissing): the statistic's type says how it is computed, merged and saved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from ...base import InPlaceOp, NotFittedError, PartitionContext
from .column_checks import require_numeric, require_values


class ColumnStatistic(Protocol):
    """A per-column statistic (``stats.moments.Moments``, ``stats.extremes.Extremes``)."""

    count: np.ndarray

    @classmethod
    def from_partition(cls, frame: pd.DataFrame, columns: Sequence[str]) -> Any: ...

    @staticmethod
    def merge(a: Any, b: Any) -> Any: ...

    def table(self) -> pd.DataFrame: ...

    @classmethod
    def from_table(cls, table: pd.DataFrame, columns: Sequence[str]) -> Any: ...


class ColumnStatsOp(InPlaceOp):
    """Replaces numeric ``columns`` in place from ``statistic`` fitted over them (in ``stats_``,
    saved as one Parquet table named ``table_name``)."""

    statistic: ClassVar[type[ColumnStatistic]]
    table_name: ClassVar[str]
    stats_: Any

    @property
    def fitted(self) -> bool:
        return self.stats_ is not None

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        require_numeric(dtypes, self.columns, self._where())

    def partition_stats(self, frame: pd.DataFrame, ctx: PartitionContext) -> Any:
        return self.statistic.from_partition(frame, self.columns)

    def merge_stats(self, a: Any, b: Any) -> Any:
        return self.statistic.merge(a, b)

    def finish_fit(self, stats: Any) -> None:
        require_values(stats.count, self.columns, self._where())
        self.stats_ = stats

    def _fitted_stats(self) -> Any:
        if self.stats_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        return self.stats_

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        if self.stats_ is None:
            raise NotFittedError(f"{self._where()} is not fitted")
        return {}, {self.table_name: self.stats_.table()}

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        self.stats_ = self.statistic.from_table(tables[self.table_name], self.columns)
