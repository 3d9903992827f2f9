"""What HashBucket and HashedCross share: hashed column groups, no statistics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from pipeline.errors import ConfigError

from ...stats.hashing import FIRST_BUCKET, hash_bucket, kinds_for
from ...stats.keys import KeyKind, fitted_kinds


def check_buckets(num_buckets: Any, op: str) -> int:
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
        raise ConfigError(f"{op}: num_buckets must be an int >= 1, got {num_buckets!r}")
    return num_buckets


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
