"""Bucketize: numeric columns -> int64 bucket indices from given boundaries, in place.

Categorical layout, as Categorify's: 0 = padding, 1 = null, then bucket ``2 + i`` for values in
``[b[i-1], b[i])`` (``2`` below the first boundary, ``2 + len(b)`` at or above the last).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline.errors import ConfigError

from ..backend import float_values
from ..base import ColumnSchema, PartitionContext, column_list
from ..op_spec import OpSpec
from .shared.numeric_map import NumericMapOp

NULL_INDEX = 1
FIRST_BUCKET = 2


class Bucketize(NumericMapOp):
    """``boundaries``: one increasing list for every column, or a dict of lists per column.

    >>> frame = pd.DataFrame({"age": [15, 25, 70, None]})
    >>> Workflow(["age"] >> Bucketize(None, [18, 65])).fit(frame).transform(frame)["age"].tolist()
    [2, 3, 4, 1]
    """

    type_name = "Bucketize"

    class Spec(OpSpec):
        op: Literal["bucketize"]
        columns: list[str] = Field(min_length=1)
        boundaries: list[float] | dict[str, list[float]]

    def __init__(
        self,
        columns: str | Sequence[str] | None,
        boundaries: Sequence[float] | Mapping[str, Sequence[float]],
    ) -> None:
        self.columns = column_list(columns, "Bucketize")
        if isinstance(boundaries, Mapping):
            missing = [c for c in self.columns if c not in boundaries]
            if missing:
                raise ConfigError(f"Bucketize: boundaries has no list for column(s) {missing!r}")
            self.boundaries: list[float] | dict[str, list[float]] = {
                str(c): _check(b, c) for c, b in boundaries.items()
            }
        else:
            self.boundaries = _check(boundaries, None)

    def _bounds(self, column: str) -> list[float]:
        b = self.boundaries
        return b[column] if isinstance(b, dict) else b

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "boundaries": self.boundaries}

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        out = {}
        for c in self.columns:
            x = float_values(frame[c])
            idx = np.searchsorted(np.asarray(self._bounds(c)), x, side="right") + FIRST_BUCKET
            out[c] = np.where(np.isnan(x), NULL_INDEX, idx).astype(np.int64)
        return out

    def column_schema(self, column: str) -> ColumnSchema:
        size = FIRST_BUCKET + len(self._bounds(column)) + 1
        return {"tags": ["categorical"], "cardinality": size}


def _check(boundaries: Any, column: str | None) -> list[float]:
    where = "Bucketize: boundaries" + (f"[{column!r}]" if column else "")
    if isinstance(boundaries, str | bytes) or not isinstance(boundaries, Sequence):
        raise ConfigError(f"{where} must be a list of numbers, got {boundaries!r}")
    values = list(boundaries)
    if not values or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in values
    ):
        raise ConfigError(f"{where} must be a non-empty list of finite numbers, got {values!r}")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ConfigError(f"{where} must be strictly increasing, got {values!r}")
    return [float(v) for v in values]
