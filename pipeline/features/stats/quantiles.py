"""A mergeable quantile summary with a tracked, deterministic rank-error bound.

Per column, the summary holds sorted distinct values with integer weights (how many rows each
stands for). While a column has at most ``capacity`` distinct values the summary *is* the data
(value counts), so quantiles are exact. Beyond that, ``compress`` collapses runs of neighboring
light values into one point carrying their total weight. Collapsing a run of total weight ``W``
changes, for any ``x``, the number of rows ``<= x`` (or ``< x``) by less than ``W``; merging adds
counts, so errors add. ``rank_error`` is the sum of the heaviest collapsed run of every
compression that went into the summary, which makes this guarantee hold whatever the split and
merge order:

    for every x:  |rows_S(<= x) - rows_D(<= x)| <= rank_error   (and the same for < x)

so the value ``quantile(q)`` returns has a rank in the data within ``rank_error`` of ``q * n``.
A compression keeps at most about ``2 capacity`` points and costs less than ``2 n / capacity``
rank error; merges compress only past ``MERGE_SLACK * capacity`` points, so few happen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .runs import run_start_mask

DEFAULT_CAPACITY = 8192
MERGE_SLACK = 4
"""Merges compress only past ``MERGE_SLACK * capacity`` points: fewer compressions, less error."""


@dataclass(frozen=True)
class QuantileSummary:
    """Sorted distinct ``values`` with ``weights``; ``count`` = weights' sum; plus nulls."""

    values: np.ndarray
    weights: np.ndarray
    rank_error: int
    nulls: int
    capacity: int = DEFAULT_CAPACITY

    @property
    def count(self) -> int:
        return int(self.weights.sum())

    @property
    def exact(self) -> bool:
        return self.rank_error == 0

    @classmethod
    def from_values(
        cls, x: np.ndarray, capacity: int = DEFAULT_CAPACITY
    ) -> QuantileSummary:
        """Summary of a float array whose NaNs are nulls. A float32 column is summarised in
        float32 (half the bytes to sort) and widened after: the same summary, exactly.

        Built straight from the sorted values: a distinct value's weight and rank are where
        its run of copies starts and ends, so ``compress`` is computed without first widening
        and counting every distinct value (the same summary).
        """
        null = np.isnan(x)
        nulls = int(np.count_nonzero(null))
        present = x[~null] if nulls else x.copy()
        present.sort()
        present += 0.0  # -0.0 and 0.0 are one value
        n = len(present)
        if n == 0:
            return cls(np.zeros(0), np.zeros(0, np.int64), 0, nulls, capacity)
        starts = np.flatnonzero(run_start_mask(present))  # rank of each distinct value
        weights = np.diff(starts, append=n)
        if len(starts) <= capacity:
            return cls(present[starts].astype(np.float64), weights, 0, nulls, capacity)
        _, run_weights, rep, lost = _collapse(starts, weights, n / capacity)
        return cls(present[starts[rep]].astype(np.float64), run_weights, lost, nulls, capacity)

    @staticmethod
    def merge(a: QuantileSummary, b: QuantileSummary) -> QuantileSummary:
        """Union of two summaries; associative in its guarantee (errors add, counts exact)."""
        values = np.concatenate([a.values, b.values])
        weights = np.concatenate([a.weights, b.weights])
        order = np.argsort(values, kind="stable")  # two sorted runs: a linear merge
        values, weights = values[order], weights[order]
        if len(values):
            starts = np.flatnonzero(run_start_mask(values))
            values, weights = values[starts], np.add.reduceat(weights, starts)
        merged = QuantileSummary(
            values, weights, a.rank_error + b.rank_error, a.nulls + b.nulls,
            max(a.capacity, b.capacity),
        )
        return merged.compress(MERGE_SLACK * merged.capacity)

    def compress(self, limit: int) -> QuantileSummary:
        """Past ``limit`` points, collapse light neighbors into runs of weight < 2 n / capacity."""
        if len(self.values) <= limit:
            return self
        before = np.cumsum(self.weights) - self.weights
        _, weights, rep, lost = _collapse(before, self.weights, self.count / self.capacity)
        return QuantileSummary(
            self.values[rep], weights, self.rank_error + lost, self.nulls, self.capacity
        )

    def quantile(self, q: float) -> float:
        """The ``q`` quantile: pandas' linear interpolation when exact, else the point at rank."""
        n = self.count
        if n == 0:
            return float("nan")
        cum = np.cumsum(self.weights)
        if self.exact:
            pos = q * (n - 1)  # 0-based fractional rank, as numpy/pandas 'linear'
            lo, hi = int(np.floor(pos)), int(np.ceil(pos))
            a = self.values[np.searchsorted(cum, lo, side="right")]
            b = self.values[np.searchsorted(cum, hi, side="right")]
            if lo == hi or a == b:
                return float(a)
            if q == 0.5 and hi == lo + 1:
                return float(np.mean([a, b]))  # what pandas' median does for even counts
            return float(a + (b - a) * (pos - lo))
        target = q * n
        return float(self.values[min(np.searchsorted(cum, target, side="left"), len(cum) - 1)])

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"value": self.values, "weight": self.weights})

    @classmethod
    def from_table(
        cls, table: pd.DataFrame, rank_error: int, nulls: int, capacity: int
    ) -> QuantileSummary:
        return cls(
            table["value"].to_numpy(np.float64),
            table["weight"].to_numpy(np.int64),
            int(rank_error),
            int(nulls),
            int(capacity),
        )


def _collapse(
    before: np.ndarray, weights: np.ndarray, band: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``compress``'s runs of points (ranks ``before``, ``weights``): a heavy point (weight
    ``>= band``) alone, light points grouped by the band their start rank is in. Gives the run
    starts, the runs' weights, each run's representative point (its weighted median, which
    keeps the run's centre) and the heaviest collapsed run's weight (the rank error added)."""
    heavy = weights >= band
    key = np.floor(before / band).astype(np.int64)
    new_run = np.r_[True, (key[1:] != key[:-1]) | heavy[1:] | heavy[:-1]]
    starts = np.flatnonzero(new_run)
    run_weights = np.add.reduceat(weights, starts)
    sizes = np.diff(starts, append=len(weights))
    mid = before[starts] + run_weights / 2.0
    rep = np.searchsorted(before + weights, mid, side="left")
    rep = np.clip(rep, starts, starts + sizes - 1)
    lost = int(run_weights[sizes > 1].max(initial=0))
    return starts, run_weights, rep, lost
