"""Shared by HashBucket and HashedCross: stable hashes of column groups into a fixed range.

Layout, as Categorify's: 0 = padding, 1 = null (any value of the group null), then ``2 ..
2 + num_buckets - 1``. Hashes come from the canonical values of the kind each column was fitted
as (``keys.canonical``), so a serving frame that spells a column differently (int vs whole
floats, ``object`` vs ``str``) lands in the same bucket, and every process agrees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError

from .group_keys import group_keys
from .keys import KeyKind, fitted_kinds, key_kind

NULL_INDEX = 1
FIRST_BUCKET = 2


def check_buckets(num_buckets: Any, op: str) -> int:
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
        raise ConfigError(f"{op}: num_buckets must be an int >= 1, got {num_buckets!r}")
    return num_buckets


def kinds_for(
    frame: pd.DataFrame, columns: Sequence[str], kinds: Mapping[str, KeyKind], where: str
) -> list[KeyKind]:
    """Fitted kinds, or (an op used without fit) the frame's own."""
    return [kinds[c] if c in kinds else key_kind(frame[c].dtype, c, where) for c in columns]


def hash_bucket(
    frame: pd.DataFrame,
    columns: Sequence[str],
    kinds: Sequence[KeyKind],
    num_buckets: int,
    where: str,
) -> np.ndarray:
    """int64 bucket of each row's value(s); always hashed (even single numeric columns)."""
    gk = group_keys(frame, columns, kinds, where)
    key = gk.key
    if len(columns) == 1 and kinds[0] != "str":
        key = pd.util.hash_array(key, categorize=False)  # raw bits -> a well-mixed hash
    out = np.full(len(frame), NULL_INDEX, dtype=np.int64)
    out[gk.ok] = FIRST_BUCKET + (key % np.uint64(num_buckets)).astype(np.int64)
    return out


class HashedGroupsMixin:
    """What HashBucket and HashedCross share: no statistics, only each input column's key kind
    (so every partition hashes a value the same way), and one hashed output per column group."""

    num_buckets: int
    kinds_: dict[str, KeyKind]
    input_columns: tuple[str, ...]
    _where: Callable[[], str]  # Op's

    def hashed_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """``(output column, input columns)`` pairs."""
        raise NotImplementedError

    @property
    def stateful(self) -> bool:
        return False

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        self.kinds_ = fitted_kinds(dtypes, self.input_columns, self._where())

    def transform(self, frame: pd.DataFrame, ctx: Any) -> dict[str, Any]:
        where = self._where()
        return {
            name: hash_bucket(
                frame, group, kinds_for(frame, group, self.kinds_, where), self.num_buckets, where
            )
            for name, group in self.hashed_groups()
        }

    def column_schema(self, column: str) -> dict[str, Any]:
        return {"tags": ["categorical"], "cardinality": FIRST_BUCKET + self.num_buckets}

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        return {"kinds": dict(self.kinds_)}, {}

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        self.kinds_ = dict(state.get("kinds", {}))
