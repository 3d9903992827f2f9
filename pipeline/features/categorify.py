"""Categorify: raw categorical values -> contiguous int64 indices (NVTabular layout)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline.errors import ConfigError

from .base import ColumnSchema, InPlaceOp, NotFittedError, PartitionContext, column_list
from .keys import KeyKind, key_kind
from .vocab import ValueCounts, Vocabulary


class Categorify(InPlaceOp):
    """Encode each column in place: 0 padding, 1 null, OOV buckets, then values by frequency.

    Values seen fewer than ``freq_threshold`` times, and values never seen, hash into one of
    ``num_buckets`` out-of-vocabulary buckets.
    """

    type_name = "Categorify"

    def __init__(
        self, columns: str | Sequence[str], freq_threshold: int = 0, num_buckets: int = 1
    ) -> None:
        self.columns = column_list(columns, "Categorify")
        if isinstance(freq_threshold, bool) or not isinstance(freq_threshold, int):
            raise ConfigError(f"Categorify: freq_threshold must be an int, got {freq_threshold!r}")
        if freq_threshold < 0:
            raise ConfigError(f"Categorify: freq_threshold must be >= 0, got {freq_threshold}")
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
            raise ConfigError(
                f"Categorify: num_buckets must be an int >= 1 (index 2.. are OOV buckets), "
                f"got {num_buckets!r}"
            )
        self.freq_threshold = freq_threshold
        self.num_buckets = num_buckets
        self.kinds_: dict[str, KeyKind] = {}
        self.vocabs_: dict[str, Vocabulary] | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "freq_threshold": self.freq_threshold,
            "num_buckets": self.num_buckets,
        }

    @property
    def fitted(self) -> bool:
        return self.vocabs_ is not None

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        self.kinds_ = {c: key_kind(dtypes[c], c, self._where()) for c in self.columns}

    def partition_stats(
        self, frame: pd.DataFrame, ctx: PartitionContext
    ) -> tuple[ValueCounts, ...]:
        where = self._where()
        return tuple(
            ValueCounts.from_partition(frame[c], self.kinds_[c], where) for c in self.columns
        )

    def merge_stats(
        self, a: tuple[ValueCounts, ...], b: tuple[ValueCounts, ...]
    ) -> tuple[ValueCounts, ...]:
        return tuple(ValueCounts.merge(x, y) for x, y in zip(a, b, strict=True))

    def finish_fit(self, stats: tuple[ValueCounts, ...]) -> None:
        self.vocabs_ = {
            c: Vocabulary.from_counts(s, self.freq_threshold, self.num_buckets)
            for c, s in zip(self.columns, stats, strict=True)
        }

    def _vocabs(self) -> dict[str, Vocabulary]:
        if self.vocabs_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        return self.vocabs_

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        vocabs, where = self._vocabs(), self._where()
        return {c: vocabs[c].encode(frame[c], where) for c in self.columns}

    def column_schema(self, column: str) -> ColumnSchema:
        vocab = self._vocabs()[column]
        return {
            "tags": ["categorical"],
            "cardinality": vocab.cardinality,
            "num_buckets": self.num_buckets,
            "vocabulary_size": len(vocab.values),
        }

    def mapping(self, column: str) -> pd.DataFrame:
        """Reverse mapping for the vocabulary: index -> raw value (and its training count).

        Indices 0 (padding), 1 (null) and the OOV buckets have no single raw value and are absent.
        """
        vocab = self._vocabs()[column]
        table = vocab.table().iloc[: len(vocab.values)]
        return table.set_index("index")[["value", "count"]]

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        vocabs = self._vocabs()
        state = {c: {"kind": v.kind, "nulls": v.nulls} for c, v in vocabs.items()}
        return {"columns": state}, {c: v.table() for c, v in vocabs.items()}

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        cols = state["columns"]
        self.kinds_ = {c: cols[c]["kind"] for c in self.columns}
        self.vocabs_ = {
            c: Vocabulary.from_table(
                tables[c], cols[c]["kind"], int(cols[c]["nulls"]), self.num_buckets
            )
            for c in self.columns
        }
