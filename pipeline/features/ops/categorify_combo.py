"""CategorifyCombo: a column group encoded as one combined categorical (NVTabular's "combo").

``CategorifyCombo([["user_id", "item_id"]])`` adds ``user_id_item_id``: each distinct (user,
item) pair gets an index in Categorify's layout (0 padding, 1 null: any value of the group null,
``2 ..`` OOV buckets, then pairs by descending count, ties by value). Pairs seen fewer than
``freq_threshold`` times, past the ``max_size`` most frequent, or never seen hash into the
buckets. The statistic is ``group_moments`` with no continuous columns (a count per key), so it
merges in the tree reduction and refits incrementally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline.errors import ConfigError, DataError

from ..backend import hash_values
from ..base import ColumnSchema, NotFittedError, PartitionContext
from ..op_spec import OpSpec
from ..stats.group_keys import group_keys
from ..stats.group_moments import GroupMoments, saved_keys
from ..stats.keys import KeyKind
from .shared.column_groups import ColumnComboOp

NULL_INDEX = 1
FIRST_BUCKET = 2


class CategorifyCombo(ColumnComboOp):
    """One int64 output column per group of two or more columns.

    >>> frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": ["a", "a", "b"]})
    >>> Workflow(CategorifyCombo([["user_id", "item_id"]])).fit(frame).transform(frame)
       user_id item_id  user_id_item_id
    0        1       a                3
    1        1       a                3
    2        2       b                4
    """

    type_name = "CategorifyCombo"
    separator = "_"

    class Spec(OpSpec):
        op: Literal["categorify_combo"]
        columns: list[str] | list[list[str]] = Field(min_length=1)
        freq_threshold: int = Field(0, ge=0)
        num_buckets: int = Field(1, ge=1)
        max_size: int | None = Field(None, ge=1)

    def __init__(
        self,
        columns: Sequence[str | Sequence[str]] | None,
        freq_threshold: int = 0,
        num_buckets: int = 1,
        max_size: int | None = None,
    ) -> None:
        self.groups = self.groups_of(columns, "CategorifyCombo")
        if any(len(g) < 2 for g in self.groups):
            raise ConfigError("CategorifyCombo: each group needs two or more columns")
        for name, v, low in (("freq_threshold", freq_threshold, 0), ("num_buckets", num_buckets, 1),
                             ("max_size", max_size, 1)):
            if v is None and name == "max_size":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"CategorifyCombo: {name} must be an int >= {low}, got {v!r}")
        self.freq_threshold = freq_threshold
        self.num_buckets = num_buckets
        self.max_size = max_size
        self.kinds_: dict[str, KeyKind] = {}
        self.stats_: dict[str, GroupMoments] | None = None
        self.codes_: dict[str, np.ndarray] | None = None

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "freq_threshold": self.freq_threshold,
                "num_buckets": self.num_buckets, "max_size": self.max_size}

    @property
    def fitted(self) -> bool:
        return self.codes_ is not None

    def partition_stats(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        return {self.output_name(g): GroupMoments.from_partition(
            frame, g, self._kinds(g), (), self._where()) for g in self.groups}

    def merge_stats(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        return {self.output_name(g): GroupMoments.merge(
            a[self.output_name(g)], b[self.output_name(g)], g, self._where()) for g in self.groups}

    def _bucket(self, key: np.ndarray) -> np.ndarray:
        return FIRST_BUCKET + (hash_values(key) % np.uint64(self.num_buckets)).astype(np.int64)

    def finish_fit(self, stats: dict[str, GroupMoments]) -> None:
        codes = {}
        for g in self.groups:
            st = stats[self.output_name(g)]
            if len(st.key) == 0:
                raise DataError(f"{self._where()}: no row has all of {list(g)!r} non-null; "
                                "nothing to encode")
            table = pd.DataFrame({f"v{i}": v for i, v in enumerate(st.values)})
            table["count"], table["pos"] = st.rows, np.arange(len(st.key))
            table = table.sort_values(["count", *table.columns[: len(g)]],
                                      ascending=[False, *[True] * len(g)], kind="stable")
            keep = table["count"].to_numpy() >= max(self.freq_threshold, 1)
            if self.max_size is not None:
                keep &= np.arange(len(table)) < self.max_size
            code = self._bucket(st.key)
            first = FIRST_BUCKET + self.num_buckets
            code[table["pos"].to_numpy()[keep]] = first + np.arange(int(keep.sum()))
            codes[self.output_name(g)] = code
        self.stats_, self.codes_ = dict(stats), codes

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        if self.stats_ is None or self.codes_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        out = {}
        for g in self.groups:
            name = self.output_name(g)
            gk = group_keys(frame, g, self._kinds(g), self._where())
            pos = self.stats_[name].lookup(gk.key, gk.values)
            enc = np.where(pos >= 0, self.codes_[name][np.maximum(pos, 0)], self._bucket(gk.key))
            col = np.full(len(frame), NULL_INDEX, dtype=np.int64)
            col[gk.ok] = enc
            out[name] = col
        return out

    def column_schema(self, column: str) -> ColumnSchema:
        size = FIRST_BUCKET + self.num_buckets
        if self.codes_ is not None:
            size = max(size, int(self.codes_[column].max(initial=0)) + 1)
        return {"tags": ["categorical"], "cardinality": size, "num_buckets": self.num_buckets}

    def mapping(self, column: str) -> pd.DataFrame:
        """Reverse mapping: index -> the group's raw values (and training count)."""
        g = self.groups[self.output_columns.index(column)]
        table = self.save_state()[1][column]
        first = FIRST_BUCKET + self.num_buckets
        return table[table["index"] >= first].sort_values("index").set_index("index")[[*g, "count"]]

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        if self.stats_ is None or self.codes_ is None:
            raise NotFittedError(f"{self._where()} is not fitted")
        tables = {}
        for g in self.groups:
            name = self.output_name(g)
            st = self.stats_[name]
            cols: dict[str, Any] = dict(zip(g, st.values, strict=True))
            cols["count"], cols["index"] = st.rows, self.codes_[name]
            tables[name] = pd.DataFrame(cols)
        return {"kinds": dict(self.kinds_)}, tables

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        self.kinds_ = dict(state["kinds"])
        stats, codes = {}, {}
        for g in self.groups:
            name, t = self.output_name(g), tables[self.output_name(g)]
            kinds = self._kinds(g)
            key, values, order = saved_keys(t, g, kinds, self._where())
            n = len(t)
            stats[name] = GroupMoments(
                tuple(kinds), key, values, t["count"].to_numpy(np.int64)[order],
                np.zeros((n, 0), np.int64), np.zeros((n, 0)), np.zeros((n, 0)))
            codes[name] = t["index"].to_numpy(np.int64)[order]
        self.stats_, self.codes_ = stats, codes
