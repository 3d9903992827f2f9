"""Categorify: raw categorical values -> contiguous int64 indices (NVTabular layout)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline.errors import ConfigError, DataError

from ..base import ColumnSchema, InPlaceOp, NotFittedError, PartitionContext, column_list
from ..op_spec import OpSpec
from ..stats.keys import KeyKind, empty_keys, key_kind
from ..stats.vocab import ValueCounts, Vocabulary
from .shared.list_columns import element_dtype, flatten, rebuild, reject_python_lists


class Categorify(InPlaceOp):
    """Encode each column in place: 0 padding, 1 null, OOV buckets, then values by frequency.

    Values seen fewer than ``freq_threshold`` times (an int, or a dict per column), values past
    the ``max_size`` most frequent ones (int or dict; None keeps all) and values never seen hash
    into one of ``num_buckets`` out-of-vocabulary buckets. ``encode_type="joint"`` gives all
    columns one shared vocabulary (counts summed over the columns), so equal values get equal
    indices in every column (e.g. ``item_id`` and ``last_item_id``).

    >>> frame = pd.DataFrame({"user_id": [7, 7, 9, None], "item_id": ["a", "b", "a", "a"]})
    >>> cats = ["user_id", "item_id"] >> Categorify(None, freq_threshold=2)
    >>> Workflow(cats).fit(frame).transform(frame)  # 9 and "b" are rare: OOV bucket 2; null: 1
       user_id  item_id
    0        3        3
    1        3        2
    2        2        3
    3        1        3
    """

    type_name = "Categorify"

    class Spec(OpSpec):
        op: Literal["categorify"]
        columns: list[str] = Field(min_length=1)
        freq_threshold: int | dict[str, int] = Field(0, description="int, or one per column")
        num_buckets: int = Field(1, ge=1)
        max_size: int | dict[str, int] | None = Field(None, description="keep the top N values")
        encode_type: Literal["separate", "joint"] = "separate"

    def __init__(
        self,
        columns: str | Sequence[str],
        freq_threshold: int | Mapping[str, int] = 0,
        num_buckets: int = 1,
        max_size: int | Mapping[str, int] | None = None,
        encode_type: str = "separate",
    ) -> None:
        self.columns = column_list(columns, "Categorify")
        self.freq_threshold = _per_column(freq_threshold, self.columns, "freq_threshold", 0)
        self.max_size = _per_column(max_size, self.columns, "max_size", 1)
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
            raise ConfigError(
                f"Categorify: num_buckets must be an int >= 1 (index 2.. are OOV buckets), "
                f"got {num_buckets!r}"
            )
        if encode_type not in ("separate", "joint"):
            raise ConfigError(
                f"Categorify: encode_type must be 'separate' or 'joint', got {encode_type!r}"
            )
        if encode_type == "joint" and (
            isinstance(self.freq_threshold, dict) or isinstance(self.max_size, dict)
        ):
            raise ConfigError(
                "Categorify: a joint vocabulary takes one freq_threshold and max_size, not a "
                "dict per column"
            )
        self.num_buckets = num_buckets
        self.encode_type = encode_type
        self.kinds_: dict[str, KeyKind] = {}
        self.lists_: list[str] = []  # list (multi-hot) columns, see ``list_columns``
        self.vocabs_: dict[str, Vocabulary] | None = None
        self.stats_: tuple[ValueCounts, ...] | None = None

    def get_params(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "freq_threshold": self.freq_threshold,
            "num_buckets": self.num_buckets,
            "max_size": self.max_size,
            "encode_type": self.encode_type,
        }

    def _setting(self, value: Any, column: str) -> Any:
        return value.get(column, None) if isinstance(value, dict) else value

    @property
    def fitted(self) -> bool:
        return self.vocabs_ is not None

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        self.lists_ = sorted(c for c in self.columns if element_dtype(dtypes[c]) is not None)
        self.kinds_ = {
            c: key_kind(element_dtype(dtypes[c]) or dtypes[c], c, self._where())
            for c in self.columns
        }
        if self.encode_type == "joint" and len(set(self.kinds_.values())) > 1:
            raise DataError(
                f"{self._where()}: a joint vocabulary needs columns of one kind, got "
                f"{self.kinds_!r}; cast them to one dtype first"
            )

    def partition_stats(
        self, frame: pd.DataFrame, ctx: PartitionContext
    ) -> tuple[ValueCounts, ...]:
        where = self._where()
        return tuple(
            ValueCounts.from_partition(self._values(frame[c]), self.kinds_[c], where)
            for c in self.columns
        )

    def _values(self, series: pd.Series) -> pd.Series:
        """The values to count: a list column's elements, else the column itself."""
        if series.name in self.lists_:
            return flatten(series)[1]
        reject_python_lists(series, self._where())
        return series

    def merge_stats(
        self, a: tuple[ValueCounts, ...], b: tuple[ValueCounts, ...]
    ) -> tuple[ValueCounts, ...]:
        return self.merge_stats_many([a, b])

    def merge_stats_many(self, parts: Sequence[tuple[ValueCounts, ...]]) -> tuple[ValueCounts, ...]:
        return tuple(ValueCounts.merge_many(list(column)) for column in zip(*parts, strict=True))

    def finish_fit(self, stats: tuple[ValueCounts, ...]) -> None:
        empty = [c for c, s in zip(self.columns, stats, strict=True) if s.counts.empty]
        if empty and (self.encode_type == "separate" or len(empty) == len(self.columns)):
            raise DataError(
                f"{self._where()}: column(s) {empty!r} have no non-null values in the fitting "
                "data, so there is no vocabulary to learn; drop them from the op"
            )
        self.stats_ = tuple(stats)
        if self.encode_type == "joint":
            shared = ValueCounts.merge_many(list(stats))
            vocab = Vocabulary.from_counts(
                shared, int(self.freq_threshold), self.num_buckets, self.max_size
            )
            self.vocabs_ = dict.fromkeys(self.columns, vocab)
            return
        self.vocabs_ = {
            c: Vocabulary.from_counts(
                s,
                self._setting(self.freq_threshold, c) or 0,
                self.num_buckets,
                self._setting(self.max_size, c),
            )
            for c, s in zip(self.columns, stats, strict=True)
        }

    def _vocabs(self) -> dict[str, Vocabulary]:
        if self.vocabs_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        return self.vocabs_

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        vocabs, where = self._vocabs(), self._where()
        out = {}
        for c in self.columns:
            if c in self.lists_:
                arr, values = flatten(frame[c])
                out[c] = rebuild(arr, vocabs[c].encode(values, where))
            else:
                reject_python_lists(frame[c], where)
                out[c] = vocabs[c].encode(frame[c], where)
        return out

    def column_schema(self, column: str) -> ColumnSchema:
        vocab = self._vocabs()[column]
        return {
            "tags": ["categorical", "list"] if column in self.lists_ else ["categorical"],
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
        """Per column its vocabulary table (value, count, index: the reverse mapping included);
        a joint vocabulary also keeps each column's own counts, for incremental refits."""
        vocabs = self._vocabs()
        state = {c: {"kind": v.kind, "nulls": v.nulls} for c, v in vocabs.items()}
        tables = {c: v.table() for c, v in vocabs.items()}
        if self.encode_type == "joint" and self.stats_ is not None:
            for c, st in zip(self.columns, self.stats_, strict=True):
                state[c]["nulls"] = st.nulls
                tables[f"{c}.counts"] = pd.DataFrame(
                    {"value": st.counts.index.array, "count": st.counts.to_numpy()}
                )
        return {"columns": state, "lists": list(self.lists_)}, tables

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        cols = state["columns"]
        self.kinds_ = {c: cols[c]["kind"] for c in self.columns}
        self.lists_ = list(state.get("lists", []))
        if self.encode_type == "joint":
            self.finish_fit(
                tuple(
                    _counts(tables[f"{c}.counts"], cols[c]["kind"], int(cols[c]["nulls"]))
                    for c in self.columns
                )
            )
            return
        self.vocabs_ = {
            c: Vocabulary.from_table(
                tables[c], cols[c]["kind"], int(cols[c]["nulls"]), self.num_buckets
            )
            for c in self.columns
        }
        self.stats_ = tuple(
            _counts(tables[c], cols[c]["kind"], int(cols[c]["nulls"])) for c in self.columns
        )


def _counts(table: pd.DataFrame, kind: KeyKind, nulls: int) -> ValueCounts:
    """A column's ``ValueCounts`` back from a saved (value, count) table."""
    values = pd.Index(table["value"].array, dtype=empty_keys(kind).dtype)
    counts = pd.Series(table["count"].to_numpy(np.int64), index=values, name="count")
    return ValueCounts(kind, counts.sort_index(), nulls)


def _per_column(
    value: Any, columns: Sequence[str], name: str, minimum: int
) -> int | dict[str, int] | None:
    """Validate a setting given once or per column (a dict naming only the op's columns)."""
    def check(v: Any, where: str) -> int | None:
        if v is None and name == "max_size":
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"Categorify: {where} must be an int >= {minimum}, got {v!r}")
        return v

    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(columns))
        if unknown and columns:  # unbound ops (columns from a graph) are checked when bound
            raise ConfigError(
                f"Categorify: {name} names column(s) {unknown!r} that the op does not encode "
                f"(its columns: {list(columns)!r})"
            )
        return {str(c): check(v, f"{name}[{c!r}]") for c, v in value.items()}  # type: ignore[misc]
    return check(value, name)
