"""Finding keys in constant time: uint64 keys through a directory of their top bits, integer
ids (often dense: 0..n) through a table indexed by their offset from the smallest.

Fitted group keys are spread over the whole 64-bit space (hashes, or integer ids through a
bijective mixer, see ``group_keys``), so the keys whose top ``B`` bits equal ``t`` form a short
run starting at ``directory[t]``. With ``2**B`` about the number of keys, a run holds one or two
keys: a lookup reads the directory and then one or two keys, where a binary search into a table
of ``n`` keys (a user x item pair has about one per row) reads ``log2(n)``, most of them cache
misses.
"""

from __future__ import annotations

import numpy as np

MAX_RUN = 64
"""Past this many keys under one directory entry (keys that are not spread), binary search."""


class KeyIndex:
    """``find`` the position of each query in ``keys`` (ascending uint64, distinct), or -1."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        n = len(keys)
        self.bits = max(n.bit_length() - 1, 0)  # 2**bits <= n: one or two keys per entry
        self.shift = np.uint64(64 - self.bits)
        runs = np.bincount(self._top(keys), minlength=1 << self.bits) if n else np.zeros(1, int)
        directory = np.zeros(len(runs) + 1, dtype=np.int64)
        np.cumsum(runs, out=directory[1:])
        self.directory = directory.astype(np.int32) if n < 2**31 else directory
        self.balanced = int(runs.max(initial=0)) <= MAX_RUN

    def _top(self, keys: np.ndarray) -> np.ndarray:
        if self.bits == 0:
            return np.zeros(len(keys), dtype=np.intp)
        return (keys >> self.shift).astype(np.intp)

    def find(self, queries: np.ndarray) -> np.ndarray:
        """Position of each query in ``keys`` (int64), -1 where absent."""
        keys = self.keys
        if len(keys) == 0 or len(queries) == 0:
            return np.full(len(queries), -1, dtype=np.int64)
        if not self.balanced:
            order = np.argsort(queries)  # sorted queries walk the table in order
            pos = np.empty(len(queries), dtype=np.int64)
            pos[order] = np.searchsorted(keys, queries[order])
        else:
            top = self._top(queries)
            pos = self.directory[top].astype(np.int64)
            end = self.directory[top + 1]
            # Step every query whose key is still smaller along its run: each pass handles the
            # queries left over by the last one, so the work is the run lengths walked.
            live = np.flatnonzero(pos < end)
            while len(live):
                live = live[keys[pos[live]] < queries[live]]
                pos[live] += 1
                live = live[pos[live] < end[live]]
        at = np.minimum(pos, len(keys) - 1)
        return np.where(keys[at] == queries, pos, -1)


DENSE_SLOTS_PER_KEY = 4
"""A ``DenseIndex`` table holds at most this many slots per key (or ``MIN_DENSE_SLOTS``)."""
MIN_DENSE_SLOTS = 1 << 16


class DenseIndex:
    """``find`` the position of each integer query in ``keys`` (distinct int64, any order), or
    -1: one read of a slot table indexed by ``query - min(keys)``.

    Where ids span a range not much wider than their number (user and item ids, codes), this
    beats hashing (pandas' ``get_indexer``) and ``KeyIndex`` alike: one random read into a
    table of a few bytes per key instead of a probe into a larger structure. ``build`` gives
    None for ids too sparse for a table.
    """

    def __init__(self, low: int, slots: np.ndarray) -> None:
        self.low, self.slots = np.int64(low), slots

    @classmethod
    def build(cls, keys: np.ndarray) -> DenseIndex | None:
        if len(keys) == 0 or keys.dtype.kind not in "iu":
            return None
        low, high = int(keys.min()), int(keys.max())
        span = high - low + 1
        if span > max(DENSE_SLOTS_PER_KEY * len(keys), MIN_DENSE_SLOTS) or high >= 2**63:
            return None
        slots = np.full(span, -1, dtype=np.int32 if len(keys) < 2**31 else np.int64)
        slots[keys.astype(np.int64) - low] = np.arange(len(keys), dtype=slots.dtype)
        return cls(low, slots)

    def find(self, queries: np.ndarray) -> np.ndarray:
        """Position of each query (int64), -1 where absent."""
        # As uint64 the offsets of queries below ``low`` wrap to huge values: one bound check.
        # (int64 subtraction wraps too, but never into [0, span): ``low + span`` <= 2**63.)
        offset = (queries.astype(np.int64, copy=False) - self.low).view(np.uint64)
        inside = offset < np.uint64(len(self.slots))
        pos = self.slots[np.where(inside, offset, 0)].astype(np.int64)
        pos[~inside] = -1
        return pos
