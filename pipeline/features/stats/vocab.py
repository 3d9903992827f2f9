"""Categorify's statistic (value counts) and its fitted encoding (the vocabulary).

Index layout (NVTabular's, so models port): 0 = padding, 1 = null, ``2 .. 2+num_buckets-1`` =
out-of-vocabulary hash buckets, then the vocabulary by descending count, ties by ascending value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .key_index import DenseIndex
from .keys import (
    STR_DTYPE,
    KeyKind,
    canonical,
    canonical_strings,
    empty_keys,
    hash_keys,
    string_dictionary,
)
from .runs import run_start_mask

PAD_INDEX = 0
NULL_INDEX = 1
FIRST_BUCKET = 2


@dataclass(frozen=True)
class ValueCounts:
    """How often each non-null value occurs, plus the null count.

    ``counts`` is indexed by canonical values in ascending order, so two equal statistics compare
    equal however the rows were split.
    """

    kind: KeyKind
    counts: pd.Series
    nulls: int

    @classmethod
    def from_partition(cls, series: pd.Series, kind: KeyKind, where: str) -> ValueCounts:
        """Counts by sorting, not hashing: the result must come out sorted by value anyway, so
        one vectorised sort and a pass over its runs replace a hash count and a second sort."""
        if kind == "str" and (encoded := string_dictionary(series)) is not None:
            return cls._from_dictionary(*encoded)
        if kind == "str":  # Arrow counts and sorts strings
            null, strings = canonical_strings(series, where)
            vc = pc.value_counts(strings)
            if null.any():  # nulls are counted apart
                vc = vc.filter(vc.field("values").is_valid())
            order = pc.sort_indices(vc.field("values"))
            distinct = pd.array(vc.field("values").take(order), dtype=STR_DTYPE)
            index = pd.Index(distinct, dtype=STR_DTYPE)
            counts = vc.field("counts").take(order).to_numpy().astype(np.int64)
        else:
            null, values = canonical(series, kind, where)
            distinct, counts = np.unique(values.to_numpy(), return_counts=True)
            index = pd.Index(distinct, dtype=values.dtype)
        series = pd.Series(counts.astype(np.int64, copy=False), index=index, name="count")
        return cls(kind, series, int(null.sum()))

    @classmethod
    def _from_dictionary(cls, codes: np.ndarray, dictionary: pa.Array) -> ValueCounts:
        """Counts of a dictionary-encoded column: a count per code, then only the used
        distinct values sorted (and merged, should the dictionary repeat a value)."""
        per_code = np.bincount(codes, minlength=len(dictionary) + 1)
        nulls = int(per_code[-1])
        used = np.flatnonzero(per_code[:-1])
        index, counts = _sum_by_string(dictionary.take(pa.array(used)), per_code[used])
        return cls("str", pd.Series(counts, index=index, name="count"), nulls)

    @classmethod
    def empty(cls, kind: KeyKind) -> ValueCounts:
        return cls(kind, pd.Series([], index=empty_keys(kind), dtype=np.int64, name="count"), 0)

    @staticmethod
    def merge(a: ValueCounts, b: ValueCounts) -> ValueCounts:
        """Sum counts per value; associative and commutative (exact integer sums)."""
        return ValueCounts.merge_many([a, b])

    @staticmethod
    def merge_many(parts: Sequence[ValueCounts]) -> ValueCounts:
        """``merge`` of any number of statistics in one pass.

        Every input is sorted by value, so one stable sort of the concatenation (NumPy's timsort
        merges the sorted runs of numbers; Arrow sorts strings) and a sum per run of equal
        values. A pairwise chain would re-group the growing result once per input.
        """
        nulls = sum(p.nulls for p in parts)
        present = [p for p in parts if not p.counts.empty]
        if len(present) <= 1:
            return ValueCounts(parts[0].kind, (present or parts)[0].counts, nulls)
        kind = present[0].kind
        counts = np.concatenate([p.counts.to_numpy(dtype=np.int64) for p in present])
        if kind == "str":  # Arrow sorts the strings themselves, NumPy would sort objects
            values = pa.concat_arrays([pa.array(p.counts.index.array) for p in present])
            index, totals = _sum_by_string(values, counts)
        else:
            values = np.concatenate([p.counts.index.to_numpy() for p in present])
            order = np.argsort(values, kind="stable")
            values = values[order]
            starts = np.flatnonzero(run_start_mask(values))
            index = pd.Index(values[starts], dtype=present[0].counts.index.dtype)
            totals = np.add.reduceat(counts[order], starts)
        series = pd.Series(totals.astype(np.int64), index=index, name="count")
        return ValueCounts(kind, series, nulls)


def _sum_by_string(values: pa.Array, counts: np.ndarray) -> tuple[pd.Index, np.ndarray]:
    """(the distinct non-null ``values``, ascending; the sum of ``counts`` over each one's
    copies): a partition's dictionary entries, or the values of several statistics."""
    order = pc.sort_indices(values).to_numpy()
    values = values.take(pa.array(order))
    counts = counts[order]
    if len(values) > 1:
        new = np.r_[True, pc.not_equal(values[1:], values[:-1]).to_numpy(zero_copy_only=False)]
        if not new.all():
            starts = np.flatnonzero(new)
            values, counts = values.take(pa.array(starts)), np.add.reduceat(counts, starts)
    index = pd.Index(pd.array(values, dtype=STR_DTYPE), dtype=STR_DTYPE)
    return index, counts.astype(np.int64, copy=False)


def _by_descending_count(counts: np.ndarray) -> np.ndarray:
    """``argsort(-counts, kind="stable")``: the (count, position) pairs as one distinct integer
    each, sorted by NumPy's vectorised unstable sort, which beats its stable sort."""
    n = len(counts)
    top = int(counts.max()) if n else 0
    if n == 0 or (top + 1) * n >= 2**62:
        return np.argsort(-counts, kind="stable")
    return np.argsort((top - counts) * n + np.arange(n))


@dataclass(frozen=True)
class Vocabulary:
    """A fitted column encoding; ``values[i]`` encodes to ``first_index + i``."""

    kind: KeyKind
    values: pd.Index
    counts: np.ndarray
    rare: pd.Series
    nulls: int
    num_buckets: int

    @property
    def first_index(self) -> int:
        return FIRST_BUCKET + self.num_buckets

    @property
    def cardinality(self) -> int:
        """Embedding-table size: reserved rows, OOV buckets and vocabulary."""
        return self.first_index + len(self.values)

    @classmethod
    def from_counts(
        cls,
        stats: ValueCounts,
        freq_threshold: int,
        num_buckets: int,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Keep values seen at least ``freq_threshold`` times, most frequent first, and at most
        ``max_size`` of them (the rest hash into the OOV buckets like rare values).

        The counts are sorted by value already, so a stable sort by descending count breaks
        ties by ascending value: no two-key sort is needed.
        """
        counts = stats.counts.to_numpy(dtype=np.int64)
        order = _by_descending_count(counts)
        kept = int(np.count_nonzero(counts >= max(freq_threshold, 1)))  # a prefix of ``order``
        if max_size is not None:
            kept = min(kept, max_size)
        rare = np.sort(order[kept:])  # by value
        index = stats.counts.index
        return cls(
            kind=stats.kind,
            values=index.take(order[:kept]),
            counts=counts[order[:kept]],
            rare=pd.Series(counts[rare], index=pd.Index(index.take(rare).array)),
            nulls=stats.nulls,
            num_buckets=num_buckets,
        )

    def bucket(self, values: pd.Index) -> np.ndarray:
        """OOV bucket of each value: a stable hash, so every process and run agrees."""
        return FIRST_BUCKET + (hash_keys(values) % np.uint64(self.num_buckets)).astype(np.int64)

    def encode(self, series: pd.Series, where: str) -> np.ndarray:
        """Vectorised encoding of one column to int64 indices."""
        if self.kind == "str":
            return self._encode_strings(series, where)
        null, values = canonical(series, self.kind, where)
        if len(values) == 0:  # all null, or Dask's empty meta: no lookup table to build
            return np.full(len(series), NULL_INDEX, dtype=np.int64)
        pos = self._positions(values)
        codes = pos + self.first_index
        unseen = pos < 0
        if unseen.any():
            codes[unseen] = self.bucket(values[unseen])
        out = np.full(len(series), NULL_INDEX, dtype=np.int64)
        out[~null] = codes
        return out

    def _encode_strings(self, series: pd.Series, where: str) -> np.ndarray:
        """``encode`` for strings: looked up with the nulls in place, null rows set after."""
        if (encoded := string_dictionary(series)) is not None:
            return self._encode_dictionary(*encoded)
        null, strings = canonical_strings(series, where)
        codes = self._string_positions(strings) + self.first_index
        unseen = codes < self.first_index
        unseen &= ~null
        if unseen.any():
            rare = strings.filter(pa.array(unseen)).to_numpy(zero_copy_only=False)
            codes[unseen] = self.bucket(pd.Index(rare, dtype=STR_DTYPE))
        codes[null] = NULL_INDEX
        return codes

    def _encode_dictionary(self, codes: np.ndarray, dictionary: pa.Array) -> np.ndarray:
        """``encode`` of a dictionary-encoded column: each distinct value looked up (and
        hashed if unseen) once, then every row takes its value's index."""
        index = self._string_positions(dictionary) + self.first_index
        unseen = index < self.first_index
        if dictionary.null_count:  # entries no row points at (see ``string_dictionary``)
            unseen &= dictionary.is_valid().to_numpy(zero_copy_only=False)
        unseen = np.flatnonzero(unseen)
        if len(unseen):
            rare = dictionary.take(pa.array(unseen)).to_numpy(zero_copy_only=False)
            index[unseen] = self.bucket(pd.Index(rare, dtype=STR_DTYPE))
        return np.append(index, NULL_INDEX)[codes]  # a null row's code: the last entry

    @cached_property
    def _arrow_values(self) -> pa.Array:
        return pa.array(self.values.array)

    @cached_property
    def _dense(self) -> DenseIndex | None:
        return DenseIndex.build(self.values.to_numpy()) if self.kind == "int" else None

    def __getstate__(self) -> dict[str, Any]:
        # the lookup structures are derived: each process builds its own on first use
        return {k: v for k, v in self.__dict__.items() if k not in ("_arrow_values", "_dense")}

    def _positions(self, values: pd.Index) -> np.ndarray:
        """Vocabulary position of each number, -1 if absent: integer ids of a compact range
        through a slot table (``DenseIndex``, one read a value), other numbers through pandas'
        hash table."""
        dense = self._dense if len(values) else None
        if dense is not None:
            return dense.find(values.to_numpy())
        return self.values.get_indexer(values)

    def _string_positions(self, strings: pa.Array) -> np.ndarray:
        """Vocabulary position of each string, -1 if absent or null: pyarrow's hash lookup,
        which hashes the Arrow strings where pandas' would hash Python objects."""
        if 2 * len(self.values) <= len(strings):
            found = pc.index_in(strings, value_set=self._arrow_values)
            return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        # Arrow hashes the value set on every call: for a vocabulary about as large as the
        # partition, hash the partition's distinct values instead and look the vocabulary up
        # in them.
        encoded = pc.dictionary_encode(strings)
        slot = pc.index_in(self._arrow_values, value_set=encoded.dictionary)
        slot = slot.fill_null(-1).to_numpy(zero_copy_only=False)
        position = np.full(len(encoded.dictionary) + 1, -1, dtype=np.int64)  # last: nulls
        in_vocab = np.flatnonzero(slot >= 0)
        position[slot[in_vocab]] = in_vocab
        index = encoded.indices.fill_null(len(encoded.dictionary))
        return position[index.to_numpy(zero_copy_only=False)]

    def table(self) -> pd.DataFrame:
        """Every seen value with its count and index (vocabulary first, then rare values)."""
        vocab = pd.DataFrame(
            {
                "value": self.values.array,
                "count": self.counts,
                "index": np.arange(len(self.values), dtype=np.int64) + self.first_index,
            }
        )
        rare_values = pd.Index(self.rare.index.array, dtype=self.values.dtype)
        rare = pd.DataFrame(
            {
                "value": rare_values.array,
                "count": self.rare.to_numpy(dtype=np.int64),
                "index": self.bucket(rare_values),
            }
        )
        return pd.concat([vocab, rare], ignore_index=True) if len(rare) else vocab

    @classmethod
    def from_table(
        cls, table: pd.DataFrame, kind: KeyKind, nulls: int, num_buckets: int
    ) -> Vocabulary:
        """Inverse of ``table`` (for loading a saved workflow)."""
        dtype = empty_keys(kind).dtype
        first = FIRST_BUCKET + num_buckets
        index = table["index"].to_numpy(dtype=np.int64)
        vocab = table[index >= first].sort_values("index")
        rare = table[index < first]
        return cls(
            kind=kind,
            values=pd.Index(vocab["value"].array, dtype=dtype),
            counts=vocab["count"].to_numpy(dtype=np.int64),
            rare=pd.Series(rare["count"].to_numpy(np.int64), index=pd.Index(rare["value"].array)),
            nulls=nulls,
            num_buckets=num_buckets,
        )
