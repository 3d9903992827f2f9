"""JoinGroupby's statistic: per group key, row count and (count, mean, M2) of each continuous
column, merged with Chan et al.'s parallel update (stable: no sums of squares).

Keys come from ``group_keys`` (vectorised, collision-checked); rows with a null key are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..backend import float_values
from .group_keys import check_collisions, group_keys, is_exact, key_of, raw_values
from .keys import KeyKind, canonical
from .runs import run_start_mask


@dataclass(frozen=True)
class GroupMoments:
    """Sorted unique ``key`` with raw ``values``; ``rows`` per key; [key, column] moments."""

    kinds: tuple[KeyKind, ...]
    key: np.ndarray
    values: tuple[np.ndarray, ...]
    rows: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def from_partition(
        cls,
        frame: pd.DataFrame,
        keys: Sequence[str],
        kinds: Sequence[KeyKind],
        conts: Sequence[str],
        where: str,
    ) -> GroupMoments:
        gk = group_keys(frame, keys, kinds, where)
        codes, uniq = pd.factorize(gk.key)
        uniq = np.asarray(uniq, dtype=np.uint64)
        order = np.argsort(uniq)
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[order] = np.arange(len(uniq))
        code = rank[codes]
        first = np.empty(len(uniq), dtype=np.int64)
        first[code] = np.arange(len(code))
        values = tuple(v[first] for v in gk.values)
        if not is_exact(kinds):
            check_collisions(keys, [v[code] for v in values], gk.values, where)
        n = len(uniq)
        shape = (n, len(conts))
        count, mean, m2 = np.zeros(shape, np.int64), np.zeros(shape), np.zeros(shape)
        for j, c in enumerate(conts):
            x = float_values(frame[c])[gk.ok]
            has = ~np.isnan(x)
            count[:, j] = np.bincount(code[has], minlength=n)
            total = np.bincount(code[has], weights=x[has], minlength=n)
            mean[:, j] = np.divide(total, count[:, j], out=np.zeros(n), where=count[:, j] > 0)
            dev = x[has] - mean[code[has], j]
            m2[:, j] = np.bincount(code[has], weights=dev * dev, minlength=n)
        return cls(tuple(kinds), uniq[order], values, np.bincount(code, minlength=n), count,
                   mean, m2)

    @staticmethod
    def merge(a: GroupMoments, b: GroupMoments, keys: Sequence[str], where: str) -> GroupMoments:
        both = np.concatenate([a.key, b.key])
        order = np.argsort(both, kind="stable")
        srt = both[order]
        new = run_start_mask(srt)
        values = tuple(
            np.concatenate([x, y])[order] for x, y in zip(a.values, b.values, strict=True)
        )
        if not is_exact(a.kinds) and not new.all():
            dup = np.flatnonzero(~new)
            check_collisions(keys, [v[dup - 1] for v in values], [v[dup] for v in values], where)
        pos = np.empty(len(both), dtype=np.int64)
        pos[order] = np.cumsum(new) - 1
        n = int(new.sum())
        pa, pb = pos[: len(a.key)], pos[len(a.key):]

        def spread(arr_a: np.ndarray, arr_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            out_a = np.zeros((n, *arr_a.shape[1:]), arr_a.dtype)
            out_b = np.zeros((n, *arr_b.shape[1:]), arr_b.dtype)
            out_a[pa], out_b[pb] = arr_a, arr_b
            return out_a, out_b

        (ca, cb), (ma, mb), (qa, qb) = (spread(a.count, b.count), spread(a.mean, b.mean),
                                        spread(a.m2, b.m2))
        ra, rb = spread(a.rows, b.rows)
        count = ca + cb
        safe = np.maximum(count, 1)
        delta = mb - ma
        mean = np.where(count > 0, ma + delta * (cb / safe), 0.0)
        m2 = np.where(count > 0, qa + qb + delta**2 * (ca * cb / safe), 0.0)
        return GroupMoments(a.kinds, srt[new], tuple(v[new] for v in values), ra + rb, count,
                            mean, m2)

    def lookup(self, key: np.ndarray, values: Sequence[np.ndarray]) -> np.ndarray:
        """Position of each key, -1 when absent (raw values double-checked for hashed keys)."""
        if len(self.key) == 0:
            return np.full(len(key), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.key, key), len(self.key) - 1).astype(np.int64)
        found = self.key[pos] == key
        if not is_exact(self.kinds):
            for mine, theirs in zip(self.values, values, strict=True):
                found &= mine[pos] == theirs
        return np.where(found, pos, -1)


def saved_keys(
    table: pd.DataFrame, keys: Sequence[str], kinds: Sequence[KeyKind], where: str
) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    """A saved table of one row per key (its group values in columns ``keys``): the keys in
    ascending order, their values, and the order of the table's rows that sorts its other
    columns alike."""
    values = tuple(raw_values(canonical(table[c], k, where)[1], k)
                   for c, k in zip(keys, kinds, strict=True))
    key = key_of(values, kinds) if len(table) else np.zeros(0, np.uint64)
    order = np.argsort(key, kind="stable")
    return key[order], tuple(v[order] for v in values), order
