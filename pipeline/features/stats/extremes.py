"""Per-column (count, min, max): NormalizeMinMax's statistic, merged exactly in any order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..backend import float_values


@dataclass(frozen=True)
class Extremes:
    """Non-null count, min and max of each column."""

    columns: tuple[str, ...]
    count: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_partition(cls, frame: pd.DataFrame, columns: Sequence[str]) -> Extremes:
        cols = tuple(columns)
        x = np.column_stack([float_values(frame[c]) for c in cols]) if len(frame) else None
        if x is None:
            n = len(cols)
            return cls(cols, np.zeros(n, np.int64), np.full(n, np.inf), np.full(n, -np.inf))
        present = ~np.isnan(x)
        return cls(
            cols,
            present.sum(axis=0).astype(np.int64),
            np.where(present, x, np.inf).min(axis=0),
            np.where(present, x, -np.inf).max(axis=0),
        )

    @staticmethod
    def merge(a: Extremes, b: Extremes) -> Extremes:
        return Extremes(a.columns, a.count + b.count, np.minimum(a.low, b.low),
                        np.maximum(a.high, b.high))

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"column": list(self.columns), "count": self.count, "min": self.low, "max": self.high}
        )

    @classmethod
    def from_table(cls, table: pd.DataFrame, columns: Sequence[str]) -> Extremes:
        rows = table.set_index("column").loc[list(columns)]
        return cls(tuple(columns), rows["count"].to_numpy(np.int64),
                   rows["min"].to_numpy(np.float64), rows["max"].to_numpy(np.float64))
