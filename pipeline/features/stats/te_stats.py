"""TargetEncoding's statistic: (count, sum of target) per group key and fold, merged exactly.

Layout (vectorised, no pandas groupby): the distinct group keys sorted (``key``, uint64, see
``group_keys``), their raw values, and per key a short run of (fold, count, sum) entries in a
CSR layout (``indptr``), folds ascending. Without out-of-fold fitting there is one fold. Rows
with a null target are ignored; rows with a null key count only in the per-fold totals (and so
in the global mean that unseen and null keys encode to).

Integer pairs (user x item) are keyed as packed pairs where their ids fit 32 bits
(``group_keys``): statistics whose keys all packed (``packed``) hold no values, which their keys
give back exactly (``raw_values``), and cannot collide: 16 bytes a key fewer in every copy of
the pair's statistics (built, shipped between workers, merged, fetched).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.memory import release_free_memory

from .group_keys import (
    check_collisions,
    empty_values,
    group_keys,
    is_exact,
    key_of,
    key_range_bounds,
    packable_rows,
    packed_keys,
    raw_values,
    unpack_pair,
)
from .keys import KeyKind, canonical
from .runs import run_start_mask

FOLD = "__fold__"
MERGE_CHUNK_KEYS = 1 << 20  # keys merged at a time: bounds the merge's temporaries
DENSE_SLOTS_PER_ROW = 4
"""Integer ids spanning at most this many values per row are counted in tables, unsorted."""


@dataclass(frozen=True)
class TargetStats:
    """Per (key, fold) target counts and sums of one column group, plus per-fold totals."""

    keys: tuple[str, ...]
    kinds: tuple[KeyKind, ...]
    n_folds: int
    key: np.ndarray
    values: tuple[np.ndarray, ...]
    indptr: np.ndarray
    fold: np.ndarray
    count: np.ndarray
    sum: np.ndarray
    total_count: np.ndarray
    total_sum: np.ndarray
    untargeted: int = 0
    """Rows with a key but a null target (like the per-fold totals, a global count: every key
    range of a ``split`` carries it)."""
    packed: bool = False
    """Every key is a packed integer pair: ``values`` is empty, ``raw_values`` unpacks keys."""

    @property
    def raw_values(self) -> tuple[np.ndarray, ...]:
        """Each key's group values (unpacked from the keys of packed statistics)."""
        return unpack_pair(self.key) if self.packed else self.values

    @classmethod
    def from_partition(
        cls,
        frame: pd.DataFrame,
        keys: Sequence[str],
        kinds: Sequence[KeyKind],
        target: str | np.ndarray,
        folds: np.ndarray | None,
        n_folds: int,
        where: str,
    ) -> TargetStats:
        """Statistics of one partition; ``target`` is a column name or a float array."""
        y = _target(frame, target)
        gk = group_keys(frame, keys, kinds, where, pack_pairs=True)
        return cls.from_keys(gk.key, gk.values, gk.ok, y, folds, n_folds, keys, kinds, where,
                             packed=gk.packed)

    @classmethod
    def from_keys(
        cls,
        key: np.ndarray,
        values: Sequence[np.ndarray],
        ok: np.ndarray,
        y: np.ndarray,
        folds: np.ndarray | None,
        n_folds: int,
        keys: Sequence[str],
        kinds: Sequence[KeyKind],
        where: str,
        packed: bool = False,
    ) -> TargetStats:
        """Statistics from precomputed group keys (shared by several targets of one group);
        ``packed``: the keys are all packed pairs (``GroupKeys.packed``), no values are kept.

        Integer ids of a compact range are counted in tables (``_by_dense_ids``). Other keys:
        one sort by key; then the rows, in key order, are sorted by (key rank, fold), which is
        nearly sorted already (only within a key's rows), so the stable sort's run detection
        makes it cheap, and every (key, fold) entry is a run of it. A dense count per (key,
        fold) cell would be slower there: five cells a key, most of them empty, for a user x
        item pair with about one key per row.
        """
        has_y = ~np.isnan(y)
        fold = folds if folds is not None else np.zeros(len(y), dtype=np.int64)
        total_count = np.bincount(fold[has_y], minlength=n_folds).astype(np.int64)
        total_sum = np.bincount(fold[has_y], weights=y[has_y], minlength=n_folds)
        untargeted = int(np.count_nonzero(ok & ~has_y))
        sel = has_y[ok]
        if packed:
            values = ()
        if sel.all() and ok.all():  # the usual case: no copies
            h, f, yy, vals = key, fold, y, tuple(values)
        else:
            h, f, yy = key[sel], fold[ok][sel], y[ok][sel]
            vals = tuple(v[sel] for v in values)
        totals = (total_count, total_sum, untargeted)
        dense = None if packed else cls._from_dense_ids(keys, kinds, n_folds, vals[0], f, yy,
                                                         totals)
        if dense is not None:
            return dense
        order = np.argsort(h)
        sorted_keys = h[order]
        new = run_start_mask(sorted_keys)
        if not packed and not is_exact(kinds) and not new.all():  # a hash: check values
            vs = [v[order] for v in vals]
            dup = np.flatnonzero(~new)
            check_collisions(keys, [v[dup - 1] for v in vs], [v[dup] for v in vs], where)
        rank = np.cumsum(new) - 1
        cell = rank * n_folds + f[order] if n_folds > 1 else rank
        cell_order = np.argsort(cell, kind="stable") if n_folds > 1 else None
        if cell_order is not None:
            cell = cell[cell_order]
        starts = np.flatnonzero(run_start_mask(cell))
        y_sorted = yy[order] if cell_order is None else yy[order[cell_order]]
        counts = np.diff(np.r_[starts, len(cell)]).astype(np.int64)
        sums = _sum_runs(y_sorted, starts)
        entry_cell = cell[starts]
        first = order[np.flatnonzero(new)]  # any row of a key will do: they share its values
        return cls(
            tuple(keys), tuple(kinds), n_folds, sorted_keys[new], tuple(v[first] for v in vals),
            _indptr(entry_cell // n_folds, int(new.sum())),
            (entry_cell % n_folds).astype(np.int16), counts, sums, total_count, total_sum,
            untargeted, packed,
        )

    @classmethod
    def _from_dense_ids(
        cls, keys: Sequence[str], kinds: Sequence[KeyKind], n_folds: int, ids: np.ndarray,
        fold: np.ndarray, y: np.ndarray, totals: tuple[Any, ...],
        weights: np.ndarray | None = None,
    ) -> TargetStats | None:
        """Statistics of rows (or, with ``weights``, of entries to merge) of one integer id
        column, counted in tables; None for other keys or ids too sparse for tables."""
        if tuple(kinds) != ("int",):
            return None
        dense = _by_dense_ids(ids, fold, y, n_folds, weights)
        if dense is None:
            return None
        sorted_ids, entry_key, entry_fold, counts, sums = dense
        return cls(
            tuple(keys), tuple(kinds), n_folds, key_of((sorted_ids,), kinds), (sorted_ids,),
            _indptr(entry_key, len(sorted_ids)), entry_fold.astype(np.int16), counts, sums,
            *totals,
        )

    @staticmethod
    def merge(a: TargetStats, b: TargetStats, where: str = "TargetEncoding") -> TargetStats:
        """Sum per (key, fold): counts exact, sums associative up to float rounding."""
        return TargetStats.merge_many([a, b], where)

    @staticmethod
    def merge_many(parts: Sequence[TargetStats], where: str = "TargetEncoding") -> TargetStats:
        """``merge`` of any number of statistics at once, one key range at a time.

        A pairwise chain re-sorts the growing result once per input; this sorts every key once.
        Inputs are sorted by key, so cutting each at the same key bounds gives slices that merge
        independently and concatenate in order: the merge's temporaries stay near
        ``MERGE_CHUNK_KEYS`` keys however large a high-cardinality group (a user x item pair
        has about one key per row) grows.
        """
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        if len({p.n_folds for p in parts}) > 1:  # an in-sample refit into out-of-fold state
            parts = [p.collapse_folds() for p in parts]
        largest = max(parts, key=lambda p: len(p.key))
        chunks = max(1, sum(len(p.key) for p in parts) // MERGE_CHUNK_KEYS)
        at = np.linspace(0, len(largest.key), chunks + 1)[1:-1].astype(np.int64)
        bounds = np.unique(largest.key[at])
        cuts = [np.r_[0, np.searchsorted(p.key, bounds), len(p.key)] for p in parts]
        pieces = [
            _merge_sorted([_key_slice(p, c[i], c[i + 1]) for p, c in zip(parts, cuts, strict=True)],
                          where)
            for i in range(len(bounds) + 1)
        ]
        merged = TargetStats.concatenate(pieces)
        return dataclasses.replace(
            merged, total_count=np.sum([p.total_count for p in parts], axis=0),
            total_sum=np.sum([p.total_sum for p in parts], axis=0),
            untargeted=sum(p.untargeted for p in parts))

    def split(self, buckets: int) -> list[TargetStats]:
        """The statistics in ``buckets`` even key ranges (views, no copies), the same ranges
        for every partition, so range ``b`` of all partitions merges on its own; every piece
        keeps the per-fold totals (they are not per key). ``concatenate`` joins them back."""
        cuts = np.r_[0, np.searchsorted(self.key, key_range_bounds(buckets)), len(self.key)]
        return [_key_slice(self, int(cuts[b]), int(cuts[b + 1])) for b in range(buckets)]

    @staticmethod
    def concatenate(pieces: list[TargetStats]) -> TargetStats:
        """Consecutive key ranges (``split``, each merged) joined into one.

        Consumes ``pieces`` (the list is emptied), copying each piece into arrays allocated
        up front and letting it go before the next: a piece received from a worker is one
        buffer under all its arrays, so joining field by field would hold every piece until
        the end, and the client would carry a key-per-row statistic twice.
        """
        if len(pieces) == 1:
            return pieces.pop()
        out = _unfilled_join(pieces, sum(len(p.key) for p in pieces),
                             sum(len(p.fold) for p in pieces))
        k = e = 0
        while pieces:
            p = pieces.pop(0)
            nk, ne = len(p.key), len(p.fold)
            out.key[k : k + nk] = p.key
            for into, v in zip(out.values, () if out.packed else p.raw_values, strict=True):
                into[k : k + nk] = v
            out.indptr[k + 1 : k + nk + 1] = p.indptr[1:] - p.indptr[0] + e
            out.fold[e : e + ne], out.count[e : e + ne] = p.fold, p.count
            out.sum[e : e + ne] = p.sum
            k, e = k + nk, e + ne
            del p
            release_free_memory()  # the piece's buffer: glibc keeps large freed blocks
        return out

    @staticmethod
    def take_joined(pieces: Sequence[TargetStats], positions: Sequence[np.ndarray]
                    ) -> TargetStats:
        """``concatenate`` of ``piece.take(pos)`` for each piece, gathered straight into the
        joined arrays (a take per piece, then a join, would copy every kept entry twice)."""
        picked = [entries_of(p.indptr, pos) for p, pos in zip(pieces, positions, strict=True)]
        out = _unfilled_join(pieces, sum(len(pos) for pos in positions),
                             sum(int(ptr[-1]) for _, ptr in picked))
        k = e = 0
        for p, pos, (entries, ptr) in zip(pieces, positions, picked, strict=True):
            nk, ne = len(pos), len(entries)
            np.take(p.key, pos, out=out.key[k : k + nk])
            for into, v in zip(out.values, () if out.packed else p.raw_values, strict=True):
                np.take(v, pos, out=into[k : k + nk])
            out.indptr[k + 1 : k + nk + 1] = ptr[1:] + e
            np.take(p.fold, entries, out=out.fold[e : e + ne])
            np.take(p.count, entries, out=out.count[e : e + ne])
            np.take(p.sum, entries, out=out.sum[e : e + ne])
            k, e = k + nk, e + ne
        return out

    @property
    def n_keys(self) -> int:
        return len(self.key)

    def several_folds(self) -> TargetStats:
        """Only the keys with entries in more than one fold: all an out-of-fold encoding of
        the fitted rows needs when none of them has a null target (see ``te_table``).
        Statistics that hold only such keys already (what a distributed fit ships to the
        transform) are returned as they are: a copy would cost each worker fresh memory."""
        several = np.diff(self.indptr) > 1
        if several.all():
            return self
        return self.take(np.flatnonzero(several))

    def take(self, positions: np.ndarray) -> TargetStats:
        """The keys at ``positions`` (ascending) with their entries; the totals unchanged."""
        entries, indptr = entries_of(self.indptr, positions)
        return TargetStats(
            self.keys, self.kinds, self.n_folds, self.key[positions],
            tuple(v[positions] for v in self.values), indptr, self.fold[entries],
            self.count[entries], self.sum[entries], self.total_count, self.total_sum,
            self.untargeted, self.packed,
        )

    def key_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """(count, sum) per key over every fold."""
        if len(self.key) == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        starts = self.indptr[:-1]
        return np.add.reduceat(self.count, starts), np.add.reduceat(self.sum, starts)

    def collapse_folds(self) -> TargetStats:
        """The same statistics summed over folds (one fold: what inference uses)."""
        count, total = self.key_totals()
        return TargetStats(
            self.keys, self.kinds, 1, self.key, self.values,
            np.arange(len(self.key) + 1, dtype=np.int64), np.zeros(len(self.key), np.int16),
            count, total, np.array([self.total_count.sum()]), np.array([self.total_sum.sum()]),
            self.untargeted, self.packed,
        )

    def lookup(self, key: np.ndarray, values: Sequence[np.ndarray]) -> np.ndarray:
        """Position of each key in ``self.key``, -1 when absent (raw values double-checked).
        TargetEncoding's transform finds keys through its own ``KeyIndex`` instead."""
        if len(self.key) == 0:
            return np.full(len(key), -1, dtype=np.int64)
        if len(key) > 4096 and len(self.key) > 65536:
            # Sorted queries walk the table in order: far fewer cache misses on a big table.
            order = np.argsort(key)
            pos = np.empty(len(key), dtype=np.int64)
            pos[order] = np.searchsorted(self.key, key[order])
        else:
            pos = np.searchsorted(self.key, key).astype(np.int64)
        pos = np.minimum(pos, len(self.key) - 1)
        return np.where(self.same_values(pos, self.key[pos] == key, values), pos, -1)

    def same_values(self, pos: np.ndarray, found: np.ndarray,
                    values: Sequence[np.ndarray]) -> np.ndarray:
        """``found`` (queries whose key matched key ``pos``) less those whose raw ``values``
        differ from the key's: a hash collision. Exact keys need no check; packed keys only
        that the query was packed too (a hashed query may share a packed key by chance)."""
        if is_exact(self.kinds):
            return found
        if self.packed:
            fits = packable_rows(values, self.kinds)
            return found if fits is None or fits.all() else found & fits
        for mine, theirs in zip(self.values, values, strict=True):
            found &= mine[pos] == theirs
        return found

    # -- persistence --------------------------------------------------------------------------

    def table(self) -> pd.DataFrame:
        """Long form: key columns, ``__fold__``, ``count``, ``sum`` (one row per entry)."""
        per_key = _entry_keys(self)
        cols: dict[str, object] = {}
        for name, kind, v in zip(self.keys, self.kinds, self.raw_values, strict=True):
            cols[name] = _column(v[per_key], kind)
        cols[FOLD] = self.fold.astype(np.int64)
        cols["count"] = self.count
        cols["sum"] = self.sum
        return pd.DataFrame(cols)

    @classmethod
    def from_table(
        cls,
        table: pd.DataFrame,
        keys: Sequence[str],
        kinds: Sequence[KeyKind],
        n_folds: int,
        total_count: Sequence[int],
        total_sum: Sequence[float],
        where: str,
    ) -> TargetStats:
        """Inverse of ``table`` (a table without ``__fold__``, as older versions saved, is one
        fold)."""
        fold = (
            table[FOLD].to_numpy(np.int64) if FOLD in table else np.zeros(len(table), np.int64)
        )
        values = tuple(
            raw_values(canonical(table[c], k, where)[1], k)
            for c, k in zip(keys, kinds, strict=True)
        )
        key, packed = packed_keys(values, kinds) if len(table) else (np.zeros(0, np.uint64), False)
        order = np.lexsort((fold, key))
        key, fold = key[order], fold[order]
        new = run_start_mask(key)
        kpos = np.cumsum(new) - 1
        if packed:
            kept: tuple[np.ndarray, ...] = ()
        else:
            kept = tuple(v[order][new] for v in values) if len(key) else empty_values(kinds)
        return cls(
            tuple(keys), tuple(kinds), int(n_folds), key[new], kept,
            _indptr(kpos, int(new.sum())), fold.astype(np.int16),
            table["count"].to_numpy(np.int64)[order], table["sum"].to_numpy(np.float64)[order],
            np.asarray(total_count, dtype=np.int64), np.asarray(total_sum, dtype=np.float64),
            packed=packed,
        )


def _by_dense_ids(
    ids: np.ndarray, fold: np.ndarray, y: np.ndarray, n_folds: int,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, ...] | None:
    """Per (key, fold) count and sum of integer ids spanning a compact range (user and item
    ids), with no sort of the rows: each row's key rank read from a table indexed by id, and
    a ``bincount`` per (rank, fold) cell, whose nonzero cells come out in (key, fold) order.
    Only the distinct ids are sorted (by key). Rows may be entries to merge: ``weights`` are
    their counts, ``y`` their sums (added in input order, as the sorting path adds them).
    Gives (ids in key order, entry key rank, entry fold, count, sum), or None when the ids are
    too sparse for tables."""
    if len(ids) == 0:
        return None
    low, high = int(ids.min()), int(ids.max())
    span = high - low + 1
    if span > DENSE_SLOTS_PER_ROW * len(ids):
        return None
    offset = ids - low
    seen = np.zeros(span, dtype=bool)
    seen[offset] = True
    distinct = np.flatnonzero(seen)
    order = np.argsort(key_of((distinct + low,), ("int",)))
    rank_of = np.empty(span, dtype=np.int64)
    rank_of[distinct[order]] = np.arange(len(distinct))
    cell = rank_of[offset] * n_folds + fold
    cells = len(distinct) * n_folds
    counts = np.bincount(cell, weights=weights, minlength=cells)
    sums = np.bincount(cell, weights=y, minlength=cells)
    used = np.zeros(cells, dtype=bool)  # cells with rows: scanning bools beats scanning counts
    used[cell] = True
    entry = np.flatnonzero(used)
    entry_key, entry_fold = np.divmod(entry, n_folds)
    return (distinct[order] + low, entry_key, entry_fold,
            counts[entry].astype(np.int64, copy=False), sums[entry])


class KeyRanges:
    """One output's statistics as a distributed fit leaves them: consecutive key ranges, each
    merged on a worker (``split``). Joined into one ``TargetStats`` only when something needs
    them whole (saving, an in-sample table, a refit): the out-of-fold transform that follows a
    ``fit_transform`` needs only the keys of several folds, a small part, so the client need
    not copy the rest (about a key per row) before that transform can start."""

    def __init__(self, pieces: list[TargetStats]) -> None:
        self.pieces = pieces

    @property
    def total_count(self) -> np.ndarray:
        return self.pieces[0].total_count

    @property
    def n_folds(self) -> int:
        return self.pieces[0].n_folds

    @property
    def untargeted(self) -> int:
        return self.pieces[0].untargeted

    @property
    def n_keys(self) -> int:
        return sum(p.n_keys for p in self.pieces)

    def join(self) -> TargetStats:
        """The whole statistics (consumes the ranges)."""
        return TargetStats.concatenate(self.pieces)

    def several_folds(self) -> TargetStats:
        return TargetStats.take_joined(
            self.pieces, [np.flatnonzero(np.diff(p.indptr) > 1) for p in self.pieces])


def _unfilled_join(pieces: Sequence[TargetStats], n_keys: int, n_entries: int) -> TargetStats:
    """Statistics shaped like the joined ``pieces`` (consecutive key ranges), their arrays
    allocated for a join to fill: packed if every piece is, else with every piece's values."""
    first = pieces[0]
    packed = all(p.packed for p in pieces)
    indptr = np.empty(n_keys + 1, np.int64)
    indptr[0] = 0
    return TargetStats(
        first.keys, first.kinds, first.n_folds, np.empty(n_keys, first.key.dtype),
        () if packed else tuple(np.empty(n_keys, v.dtype) for v in first.raw_values), indptr,
        np.empty(n_entries, first.fold.dtype), np.empty(n_entries, first.count.dtype),
        np.empty(n_entries, first.sum.dtype), first.total_count, first.total_sum,
        first.untargeted, packed,
    )


def _target(frame: pd.DataFrame, target: str | np.ndarray) -> np.ndarray:
    if isinstance(target, str):
        return frame[target].to_numpy(dtype=np.float64, na_value=np.nan)
    return target


def _sum_runs(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.add.reduceat(values, starts) if len(starts) else values[:0]


def _indptr(entry_key: np.ndarray, n_keys: int) -> np.ndarray:
    """CSR row pointers from the (sorted) key index of each entry."""
    return np.r_[0, np.cumsum(np.bincount(entry_key, minlength=n_keys))].astype(np.int64)


def entries_of(indptr: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entries of the keys at ``positions``, run after run, and their own row pointers."""
    starts = indptr[positions]
    n = indptr[positions + 1] - starts
    out = np.zeros(len(positions) + 1, dtype=np.int64)
    np.cumsum(n, out=out[1:])
    return np.repeat(starts - out[:-1], n) + np.arange(int(out[-1])), out


def _entry_keys(stats: TargetStats) -> np.ndarray:
    """The key index of each (key, fold) entry."""
    return np.repeat(np.arange(len(stats.key), dtype=np.int64), np.diff(stats.indptr))


def _column(values: np.ndarray, kind: KeyKind) -> object:
    if kind == "str":
        return pd.array(values, dtype=pd.StringDtype(na_value=np.nan))
    return values


def _key_slice(stats: TargetStats, lo: int, hi: int) -> TargetStats:
    """Keys ``lo:hi`` of ``stats`` and their entries (views, no copies)."""
    first, last = int(stats.indptr[lo]), int(stats.indptr[hi])
    return TargetStats(
        stats.keys, stats.kinds, stats.n_folds, stats.key[lo:hi],
        tuple(v[lo:hi] for v in stats.values), stats.indptr[lo:hi + 1] - first,
        stats.fold[first:last], stats.count[first:last], stats.sum[first:last],
        stats.total_count, stats.total_sum, stats.untargeted, stats.packed,
    )


def _merge_sorted(parts: Sequence[TargetStats], where: str) -> TargetStats:
    """Sum per (key, fold) over ``parts`` (totals are the caller's): integer ids of a compact
    range in tables, other keys by one sort of the keys, then of their entries, which come out
    of the key order nearly sorted already."""
    first, k = parts[0], parts[0].n_folds
    if first.kinds == ("int",):
        sizes = np.concatenate([np.diff(p.indptr) for p in parts])
        dense = TargetStats._from_dense_ids(
            first.keys, first.kinds, k,
            np.repeat(np.concatenate([p.values[0] for p in parts]), sizes),
            np.concatenate([p.fold for p in parts]), np.concatenate([p.sum for p in parts]),
            (first.total_count, first.total_sum), weights=np.concatenate([p.count for p in parts]))
        if dense is not None:
            return dense
    keys = np.concatenate([p.key for p in parts])
    order, sorted_keys = _stable_key_order(keys)
    new = run_start_mask(sorted_keys)
    packed = all(p.packed for p in parts)  # else the values of all, packed parts unpacked
    values = () if packed else tuple(
        np.concatenate(vs)[order] for vs in zip(*(p.raw_values for p in parts), strict=True))
    if not packed and not is_exact(first.kinds) and not new.all():
        dup = np.flatnonzero(~new)
        check_collisions(first.keys, [v[dup - 1] for v in values], [v[dup] for v in values],
                         where)
    n_keys = int(new.sum())
    # Every part's entries, key by key in merged key order (each key's runs in part order):
    # sorted by (key, fold) except where a key has runs in several parts, so the stable sort
    # by cell that follows is nearly free, and adds each cell's entries in part order.
    entry_offsets = np.cumsum([0, *(len(p.fold) for p in parts)])
    indptr = np.r_[np.concatenate([p.indptr[:-1] + entry_offsets[i]
                                   for i, p in enumerate(parts)]), entry_offsets[-1]]
    eorder, _ = entries_of(indptr, order)
    rank = np.repeat(np.cumsum(new) - 1, np.diff(indptr)[order])
    gid = rank * k + np.concatenate([p.fold for p in parts])[eorder]
    nearly = np.argsort(gid, kind="stable")
    eorder, gid = eorder[nearly], gid[nearly]
    starts = np.flatnonzero(run_start_mask(gid))
    count = _sum_runs(np.concatenate([p.count for p in parts])[eorder], starts)
    total = _sum_runs(np.concatenate([p.sum for p in parts])[eorder], starts)
    gid = gid[starts]
    return TargetStats(
        first.keys, first.kinds, k, sorted_keys[new], tuple(v[new] for v in values),
        _indptr(gid // k, n_keys), (gid % k).astype(np.int16), count.astype(np.int64), total,
        first.total_count, first.total_sum, packed=packed,
    )


def _stable_key_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``argsort(keys, kind="stable")`` and the sorted keys, faster: NumPy's vectorised
    unstable sort, then the few runs of equal keys (a key in several parts) put back in input
    order."""
    if len(keys) >= 2**31:  # the one-integer trick below needs len(keys)**2 < 2**63
        order = np.argsort(keys, kind="stable")
        return order, keys[order]
    order = np.argsort(keys)
    sorted_keys = keys[order]
    tied = sorted_keys[1:] == sorted_keys[:-1]
    if tied.any():
        in_run = np.zeros(len(keys), dtype=bool)  # every position of a run of equal keys
        in_run[1:] = tied
        in_run[:-1] |= tied
        at = np.flatnonzero(in_run)
        # (run number, input position) as one integer: one vectorised sort orders each run
        run = np.cumsum(run_start_mask(sorted_keys[at])) - 1
        order[at] = np.sort(run * len(keys) + order[at]) % len(keys)
    return order, sorted_keys

