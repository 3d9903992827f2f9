"""Structural ops: Rename, AddTags and Filter. Stateless; they shape the graph, not the values.

* ``Rename`` writes its columns under new names (``mapping`` or a ``postfix``); the old versions
  stay available to other branches.
* ``AddTags`` passes its columns through unchanged and adds tags to them in the output schema
  (``["user_id"] >> AddTags(None, tags=["user_id"])``), which models read.
* ``Filter`` keeps the rows where ``column <op> value`` holds. Rows are dropped from the whole
  partition at the step where the filter runs: every later step, every fitting pass of later
  stateful ops and the output see only the kept rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError

from ..base import ColumnSchema, InPlaceOp, Op, PartitionContext, column_list


class Rename(Op):
    """Copy columns to new names: ``mapping={"old": "new"}`` or ``postfix="_raw"``.

    >>> frame = pd.DataFrame({"price": [1.0, 2.0]})
    >>> raw = ["price"] >> Rename(None, postfix="_raw")  # or mapping={"price": "raw_price"}
    >>> Workflow(raw + ["price"]).fit(frame).transform(frame).columns.tolist()
    ['price_raw', 'price']
    """

    type_name = "Rename"
    in_place = False

    def __init__(
        self,
        columns: str | Sequence[str] | None = None,
        mapping: Mapping[str, str] | None = None,
        postfix: str | None = None,
    ) -> None:
        if (mapping is None) == (postfix is None):
            raise ConfigError("Rename: give exactly one of mapping={old: new} or postfix='_x'")
        if mapping is not None:
            if not isinstance(mapping, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items()
            ):
                raise ConfigError(f"Rename: mapping must map names to names, got {mapping!r}")
            if len(set(mapping.values())) != len(mapping):
                raise ConfigError(f"Rename: mapping {dict(mapping)!r} gives two columns one name")
        elif not isinstance(postfix, str) or not postfix:
            raise ConfigError(f"Rename: postfix must be a non-empty string, got {postfix!r}")
        self.mapping = dict(mapping) if mapping is not None else None
        self.postfix = postfix
        if columns is None and self.mapping is not None:
            columns = list(self.mapping)
        self.columns = column_list(columns, "Rename")
        if self.mapping is not None and self.columns:
            unnamed = [c for c in self.columns if c not in self.mapping]
            if unnamed:
                raise ConfigError(f"Rename: mapping has no new name for column(s) {unnamed!r}")

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "mapping": self.mapping, "postfix": self.postfix}

    def with_columns(self, columns: Sequence[Any]) -> Op:
        return Rename(list(columns), mapping=self.mapping, postfix=self.postfix)

    @property
    def stateful(self) -> bool:
        return False

    @property
    def input_columns(self) -> tuple[str, ...]:
        return self.columns

    def new_name(self, column: str) -> str:
        return self.mapping[column] if self.mapping is not None else column + str(self.postfix)

    @property
    def output_columns(self) -> tuple[str, ...]:
        return tuple(self.new_name(c) for c in self.columns)

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        return {self.new_name(c): frame[c].array for c in self.columns}


class AddTags(InPlaceOp):
    """Tag columns in the output schema (values unchanged).

    >>> frame = pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4]})
    >>> wf = Workflow((["user_id"] >> AddTags(None, tags=["user_id"])) + ["item_id"]).fit(frame)
    >>> wf.output_schema["user_id"]["tags"]
    ['user_id']
    """

    type_name = "AddTags"

    def __init__(self, columns: str | Sequence[str] | None = None,
                 tags: Sequence[str] = ()) -> None:
        self.columns = column_list(columns, "AddTags")
        if isinstance(tags, str):
            tags = [tags]
        if not tags or not all(isinstance(t, str) and t for t in tags):
            raise ConfigError(f"AddTags: tags must be a non-empty list of names, got {tags!r}")
        self.tags = list(dict.fromkeys(tags))

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "tags": self.tags}

    @property
    def stateful(self) -> bool:
        return False

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        return {c: frame[c].array for c in self.columns}

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": list(self.tags), "cardinality": None}


_COMPARE = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal,
}


class Filter(InPlaceOp):
    """Keep rows where ``column <op> value`` (``op`` one of ``== != < <= > >=``, ``notnull``,
    ``isin``); nulls never pass a comparison.

    >>> frame = pd.DataFrame({"rating": [1, 5, None]})
    >>> Workflow(["rating"] >> Filter(None, op=">=", value=4)).fit(frame).transform(frame)
       rating
    1     5.0
    """

    type_name = "Filter"
    filters_rows: ClassVar[bool] = True

    def __init__(self, columns: str | Sequence[str] | None = None, op: str = "notnull",
                 value: Any = None) -> None:
        self.columns = column_list(columns, "Filter")
        if len(self.columns) > 1:
            raise ConfigError(f"Filter: tests one column, got {list(self.columns)!r}")
        if op not in (*_COMPARE, "notnull", "isin"):
            known = [*_COMPARE, "notnull", "isin"]
            raise ConfigError(f"Filter: op must be one of {known}, got {op!r}")
        if op == "isin" and not isinstance(value, list):
            raise ConfigError(f"Filter: 'isin' needs a list value, got {value!r}")
        if op in _COMPARE and (value is None or isinstance(value, list | dict)):
            raise ConfigError(f"Filter: {op!r} needs a scalar value, got {value!r}")
        self.op, self.value = op, value

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "op": self.op, "value": self.value}

    @property
    def stateful(self) -> bool:
        return False

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean keep-mask over the frame's rows."""
        s = frame[self.columns[0]]
        present = s.notna().to_numpy(dtype=bool)
        if self.op == "notnull":
            return present
        if self.op == "isin":
            return present & s.isin(self.value).to_numpy(dtype=bool)
        try:
            hit = _COMPARE[self.op](s, self.value)
        except TypeError as exc:
            raise ConfigError(
                f"{self!r}: cannot compare column {self.columns[0]!r} ({s.dtype}) with "
                f"{self.value!r}"
            ) from exc
        return present & np.asarray(hit.fillna(False) if hasattr(hit, "fillna") else hit, bool)

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        return {c: frame[c].array for c in self.columns}
