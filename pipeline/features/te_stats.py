"""TargetEncoding's statistic and fitted encoder.

Statistic per group value (and per fold when fitting out-of-fold): (count, sum of target), plus
the same totals over every row with a target. Rows whose target is null are ignored; rows whose
key has a null are counted in the totals only, and encode to the global mean, like unseen keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .backend import float_values
from .keys import KeyKind, canonical

FOLD = "__fold__"


def key_arrays(
    frame: pd.DataFrame, keys: Sequence[str], kinds: Sequence[KeyKind], where: str
) -> tuple[np.ndarray, list[pd.Index]]:
    """(rows whose keys are all non-null, canonical key values of those rows, one per key)."""
    parts = [canonical(frame[k], kind, where) for k, kind in zip(keys, kinds, strict=True)]
    ok = np.ones(len(frame), dtype=bool)
    for null, _ in parts:
        ok &= ~null
    return ok, [values[ok[~null]] for null, values in parts]


@dataclass(frozen=True)
class TargetStats:
    """Group statistics: ``table`` has the key columns, ``__fold__``, ``count`` and ``sum``.

    Rows are sorted by (keys, fold), so equal statistics compare equal whatever the split.
    ``total_count``/``total_sum`` hold the per-fold totals (one fold when not out-of-fold).
    """

    keys: tuple[str, ...]
    table: pd.DataFrame
    total_count: np.ndarray
    total_sum: np.ndarray

    @classmethod
    def from_partition(
        cls,
        frame: pd.DataFrame,
        keys: Sequence[str],
        kinds: Sequence[KeyKind],
        target: str,
        folds: np.ndarray | None,
        n_folds: int,
        where: str,
    ) -> TargetStats:
        y = float_values(frame[target])
        has_y = ~np.isnan(y)
        fold = folds if folds is not None else np.zeros(len(frame), dtype=np.int64)
        ok, values = key_arrays(frame, keys, kinds, where)
        sel = has_y[ok]
        cols: dict[str, object] = {k: v[sel].array for k, v in zip(keys, values, strict=True)}
        cols[FOLD] = fold[ok][sel]
        cols["y"] = y[ok][sel]
        grouped = pd.DataFrame(cols).groupby([*keys, FOLD], sort=True)["y"]
        table = pd.DataFrame({"count": grouped.size(), "sum": grouped.sum()}).reset_index()
        table["count"] = table["count"].astype(np.int64)
        return cls(
            tuple(keys),
            table,
            np.bincount(fold[has_y], minlength=n_folds).astype(np.int64),
            np.bincount(fold[has_y], weights=y[has_y], minlength=n_folds).astype(np.float64),
        )

    @staticmethod
    def merge(a: TargetStats, b: TargetStats) -> TargetStats:
        """Sum per (key, fold); counts exact, sums associative up to float rounding."""
        if b.table.empty:
            table = a.table
        elif a.table.empty:
            table = b.table
        else:
            both = pd.concat([a.table, b.table], ignore_index=True)
            table = both.groupby([*a.keys, FOLD], sort=True, as_index=False)[["count", "sum"]].sum()
        return TargetStats(a.keys, table, a.total_count + b.total_count, a.total_sum + b.total_sum)

    def collapse_folds(self) -> TargetStats:
        """The same statistics summed over folds (what is saved and used for inference)."""
        if self.table.empty:
            table = self.table.drop(columns=FOLD)
        else:
            table = self.table.groupby(list(self.keys), sort=True, as_index=False)[
                ["count", "sum"]
            ].sum()
        return TargetStats(
            self.keys,
            table.reset_index(drop=True),
            np.array([self.total_count.sum()]),
            np.array([self.total_sum.sum()]),
        )


def _gather(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``values[pos]`` with 0 where ``pos`` is -1 (not found)."""
    if len(values) == 0:
        return np.zeros(len(pos))
    return np.where(pos >= 0, values[np.maximum(pos, 0)], 0.0)


class TargetEncoder:
    """Smoothed means ``(sum + p * global_mean) / (count + p)``, looked up vectorised."""

    def __init__(
        self,
        stats: TargetStats,
        kinds: Sequence[KeyKind],
        p_smooth: float,
        folds: TargetStats | None = None,
    ) -> None:
        self.stats = stats
        self.kinds = tuple(kinds)
        self.p_smooth = float(p_smooth)
        self.global_count = float(stats.total_count.sum())
        self.global_sum = float(stats.total_sum.sum())
        self.global_mean = self.global_sum / max(self.global_count, 1.0)
        self._index = pd.MultiIndex.from_arrays([stats.table[k].array for k in stats.keys])
        self._count = stats.table["count"].to_numpy(np.float64)
        self._sum = stats.table["sum"].to_numpy(np.float64)
        self.folds = folds
        if folds is not None:
            self._fold_index = pd.MultiIndex.from_arrays(
                [folds.table[k].array for k in (*folds.keys, FOLD)]
            )
            self._fold_count = folds.table["count"].to_numpy(np.float64)
            self._fold_sum = folds.table["sum"].to_numpy(np.float64)

    def encode(self, frame: pd.DataFrame, where: str, fold: np.ndarray | None = None) -> np.ndarray:
        """float32 encodings; with ``fold``, each row's own fold is left out (training rows)."""
        ok, values = key_arrays(frame, self.stats.keys, self.kinds, where)
        pos = self._index.get_indexer(pd.MultiIndex.from_arrays(values))
        count, total = _gather(self._count, pos), _gather(self._sum, pos)
        prior = np.full(len(frame), self.global_mean)
        if fold is not None and self.folds is not None:
            # Leave the row's own fold out of its group's statistics and of the global mean.
            rest = self.global_count - self.folds.total_count[fold]
            rest_sum = self.global_sum - self.folds.total_sum[fold]
            prior = np.where(rest > 0, rest_sum / np.maximum(rest, 1), prior)
            fpos = self._fold_index.get_indexer(pd.MultiIndex.from_arrays([*values, fold[ok]]))
            count = count - _gather(self._fold_count, fpos)
            total = total - _gather(self._fold_sum, fpos)
        out = prior.copy()
        denom = count + self.p_smooth
        smoothed = (total + self.p_smooth * prior[ok]) / np.where(denom > 0, denom, 1.0)
        out[ok] = np.where(denom > 0, smoothed, prior[ok])
        return out.astype(np.float32)
