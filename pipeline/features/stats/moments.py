"""Per-column (count, mean, M2) with Chan et al.'s parallel merge.

Sums of squares lose precision catastrophically when the mean is large relative to the spread;
Chan's update keeps the merged variance accurate for any split of the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..backend import float_values


@dataclass(frozen=True)
class Moments:
    """Non-null count, mean and sum of squared deviations of each column."""

    columns: tuple[str, ...]
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def from_partition(cls, frame: pd.DataFrame, columns: Sequence[str]) -> Moments:
        cols = tuple(columns)
        if not cols:
            return cls(cols, np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
        count = np.zeros(len(cols), dtype=np.int64)
        mean, m2 = np.zeros(len(cols)), np.zeros(len(cols))
        for j, c in enumerate(cols):  # column by column: no (rows x columns) temporaries
            x = float_values(frame[c])
            x = x[~np.isnan(x)]
            count[j] = len(x)
            if len(x):
                mean[j] = x.sum() / len(x)
                deviation = x - mean[j]
                m2[j] = np.dot(deviation, deviation)
        return cls(cols, count, mean, m2)

    @staticmethod
    def merge(a: Moments, b: Moments) -> Moments:
        """Chan's pairwise update; exact in counts, associative up to float rounding."""
        n = a.count + b.count
        safe_n = np.maximum(n, 1)
        delta = b.mean - a.mean
        mean = np.where(n > 0, a.mean + delta * (b.count / safe_n), 0.0)
        m2 = a.m2 + b.m2 + delta**2 * (a.count * b.count / safe_n)
        return Moments(a.columns, n, mean, np.where(n > 0, m2, 0.0))

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0, as scikit-learn's StandardScaler)."""
        return np.sqrt(
            np.divide(self.m2, self.count, out=np.zeros(len(self.columns)), where=self.count > 0)
        )

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"column": list(self.columns), "count": self.count, "mean": self.mean, "m2": self.m2}
        )

    @classmethod
    def from_table(cls, table: pd.DataFrame, columns: Sequence[str]) -> Moments:
        rows = table.set_index("column").loc[list(columns)]
        return cls(
            tuple(columns),
            rows["count"].to_numpy(np.int64),
            rows["mean"].to_numpy(np.float64),
            rows["m2"].to_numpy(np.float64),
        )
