"""TargetEncoding's lookup table: each key's encoded value, or each (key, fold) entry's.

Derived from the fitted ``TargetStats`` once per process, on its first transform, and never
saved or shipped. A training row's out-of-fold value depends only on its key and its fold, and
that (key, fold) is one of the statistics' entries (the row itself was counted there), so the
table holds one value per entry: a transform finds the key (``KeyIndex``), the entry from the
key's fold bitmask, and reads one value, instead of gathering the key's totals and its fold's
entry and smoothing them row by row. The values come from the very float64 operations of that
row-by-row formula, rounded to float32 once: a seen key's encoding is unchanged bit for bit
(an unseen key's is the prior itself).

Out of fold, the table leaves out the keys seen in one fold only: all their rows are in that
fold, and with the fold left out nothing is known of the key, so they encode to the fold's
prior, as unseen keys do. Most user x item pairs are such keys, so the table is a small
fraction of the statistics. Only a row with a null target (it
added no entry) can sit in another fold than its key's one entry: those few are looked up in
the whole statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .group_keys import GroupKeys, is_exact
from .key_index import DenseIndex, KeyIndex
from .te_stats import TargetStats, entries_of

MAX_FOLDS = 64  # a fold bitmask per key is one uint64 at most
CHUNK_KEYS = 1 << 15
"""Keys built at a time: their float64 temporaries (a few hundred KB) stay in cache and reuse
the memory the last chunk freed."""


@dataclass(frozen=True)
class EncodingTable:
    """``values``: per key of ``stats`` (in-sample), or per (key, fold) entry of ``stats``,
    the keys of more than one fold (out of fold, with ``masks``: bit ``f`` of a key's mask is
    set when it has an entry for fold ``f``); ``prior[f]``: the encoding of unseen and null
    keys for a row of fold ``f``."""

    stats: TargetStats
    index: KeyIndex | DenseIndex
    values: np.ndarray
    prior: np.ndarray
    p_smooth: float
    masks: np.ndarray | None = None

    @classmethod
    def build(cls, stats: TargetStats, p_smooth: float, out_of_fold: bool) -> EncodingTable:
        """The table of ``stats``; ``out_of_fold`` (and more than one fitted fold): per entry."""
        per_fold = out_of_fold and stats.n_folds > 1
        prior = _prior(stats, per_fold)
        if per_fold:
            stats = stats.several_folds()
        n_keys = len(stats.key)
        values = np.empty(len(stats.fold) if per_fold else n_keys, dtype=np.float32)
        masks = _mask_array(stats.n_folds, n_keys) if per_fold else None

        for lo in range(0, n_keys, CHUNK_KEYS):
            hi = min(lo + CHUNK_KEYS, n_keys)
            first, last = int(stats.indptr[lo]), int(stats.indptr[hi])
            out = values[first:last] if per_fold else values[lo:hi]
            _chunk(stats, lo, hi, prior, p_smooth, out, masks)
        return cls(stats, _index(stats), values, prior.astype(np.float32), p_smooth, masks)

    def encode(self, gk: GroupKeys, fold: np.ndarray | None = None,
               no_target: np.ndarray | None = None, whole: TargetStats | None = None
               ) -> np.ndarray:
        """float32 encoding of each row; ``fold`` (training rows) picks its out-of-fold value.
        Out of fold, rows flagged in ``no_target`` (a null target) whose key the table lacks
        are looked up in ``whole``, the statistics the table was built from."""
        stats = self.stats
        per_fold = fold is not None and self.masks is not None
        out = self.prior[fold] if per_fold else np.full(len(gk.ok), self.prior[0])
        if isinstance(self.index, DenseIndex):  # integer ids: found by value
            pos = self.index.find(gk.values[0])
        else:
            pos = self.index.find(gk.key)
        # A hash: the raw values must match too. Packed pairs found by packed queries (every
        # row's ids fit 32 bits, as ``group_keys`` already knows) are exact: nothing to check.
        if not is_exact(stats.kinds) and len(stats.key) and not (stats.packed and gk.packed):
            pos = np.where(stats.same_values(np.maximum(pos, 0), pos >= 0, gk.values), pos, -1)
        hit = pos >= 0
        rows = np.flatnonzero(gk.ok)[hit]
        pos = pos[hit]
        if not per_fold:
            out[rows] = self.values[pos]
            return out
        assert fold is not None and self.masks is not None
        have = self.masks[pos]
        bit = np.left_shift(np.ones(1, have.dtype), fold[rows].astype(have.dtype))
        own = (have & bit) != 0
        # the entry's offset in its key's run: how many lower folds the key has
        entry = stats.indptr[pos[own]] + np.bitwise_count(have[own] & (bit[own] - 1))
        out[rows[own]] = self.values[entry]
        if not own.all():  # a row whose fold the key lacks (its target was null): all entries
            lack = ~own
            prior = _prior(stats, True)[fold[rows[lack]]]
            out[rows[lack]] = _whole_key(stats, pos[lack], prior, self.p_smooth)
        if no_target is not None and whole is not None:
            self._encode_untargeted_misses(gk, fold, no_target, whole, hit, out)
        return out

    def _encode_untargeted_misses(self, gk: GroupKeys, fold: np.ndarray, no_target: np.ndarray,
                                  whole: TargetStats, hit: np.ndarray, out: np.ndarray) -> None:
        """Null-target rows whose key the table lacks: a key of one fold, if not theirs, encodes
        from that fold's entry (as a key lacking the row's fold does)."""
        ok_rows = np.flatnonzero(gk.ok)
        miss = np.flatnonzero(~hit)
        miss = miss[no_target[ok_rows[miss]]]
        if len(miss) == 0:
            return
        pos = whole.lookup(gk.key[miss], [v[miss] for v in gk.values])
        rows = ok_rows[miss]
        other = (pos >= 0) & (whole.fold[whole.indptr[np.maximum(pos, 0)]] != fold[rows])
        if other.any():
            prior = _prior(whole, True)[fold[rows[other]]]
            out[rows[other]] = _whole_key(whole, pos[other], prior, self.p_smooth)


def _index(stats: TargetStats) -> KeyIndex | DenseIndex:
    """How a transform finds a row's key: integer ids of a compact range by value (one read
    of a slot table), anything else by its uint64 key."""
    dense = DenseIndex.build(stats.values[0]) if stats.kinds == ("int",) else None
    return dense if dense is not None else KeyIndex(stats.key)


def _prior(stats: TargetStats, per_fold: bool) -> np.ndarray:
    """float64 prior: the global mean, or per fold the mean of the other folds."""
    global_count = float(stats.total_count.sum())
    global_sum = float(stats.total_sum.sum())
    mean = global_sum / max(global_count, 1.0)
    if not per_fold:
        return np.array([mean])
    rest = global_count - stats.total_count
    rest_sum = global_sum - stats.total_sum
    return np.where(rest > 0, rest_sum / np.maximum(rest, 1), mean)


def _smooth(count: np.ndarray, total: np.ndarray, prior: np.ndarray | float,
            p: float) -> np.ndarray:
    """float32 ``(total + p * prior) / (count + p)``; ``prior`` itself where the count is 0
    (as for a key left out of an out-of-fold table)."""
    smoothed = (total + p * prior) / np.where(count > 0, count + p, 1.0)
    return np.where(count > 0, smoothed, prior).astype(np.float32)


def _whole_key(stats: TargetStats, pos: np.ndarray, prior: np.ndarray, p: float) -> np.ndarray:
    """float32 encodings of keys ``pos`` from all their entries (rows of a fold they lack)."""
    entries, indptr = entries_of(stats.indptr, pos)
    offsets = indptr[:-1]
    count = np.add.reduceat(stats.count[entries], offsets).astype(np.float64)
    return _smooth(count, np.add.reduceat(stats.sum[entries], offsets), prior, p)


def _chunk(stats: TargetStats, lo: int, hi: int, prior: np.ndarray, p: float,
           out: np.ndarray, masks: np.ndarray | None) -> None:
    """Keys ``lo:hi``: their values (per key, or per entry with ``masks``) into ``out``, and
    their fold masks. Chunks keep the float64 temporaries small and warm: fresh pages for
    whole-table temporaries cost more than the arithmetic."""
    first, last = int(stats.indptr[lo]), int(stats.indptr[hi])
    if last == first:
        return
    starts = stats.indptr[lo:hi] - first
    count = stats.count[first:last]
    total = stats.sum[first:last]
    key_count = np.add.reduceat(count, starts).astype(np.float64)
    key_sum = np.add.reduceat(total, starts)
    if masks is None:
        out[:] = _smooth(key_count, key_sum, prior[0], p)
        return
    fold = stats.fold[first:last]
    entry_key = np.repeat(np.arange(hi - lo), np.diff(stats.indptr[lo:hi + 1]))
    # the key's totals less the entry's own fold (float64, as row by row)
    out[:] = _smooth(key_count[entry_key] - count, key_sum[entry_key] - total, prior[fold], p)
    bits = np.left_shift(np.ones(1, masks.dtype), fold.astype(masks.dtype))
    masks[lo:hi] = np.add.reduceat(bits, starts)  # distinct bits: the sum is the or


def _mask_array(n_folds: int, n_keys: int) -> np.ndarray:
    """Per key, bit ``f`` set when the key has an entry for fold ``f``: the smallest uint."""
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64)
                 if np.iinfo(t).bits >= n_folds)
    return np.zeros(n_keys, dtype)
