"""DifferenceLag: time since the same user's previous event, as a new float64 column.

Partition-local by design: each partition is sorted by (``partition_col``, ``timestamp``) and
a row's lag is its timestamp minus that of the user's previous event *in the same partition*
(NaN for the first). Partition the data by user (e.g. ``set_index``/``shuffle`` on the user, or
files written per user range) for exact results; otherwise a user's first row in each partition
gets NaN. Datetime timestamps give seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pydantic import Field

from pipeline.errors import ConfigError, DataError

from ..base import ColumnSchema, Op, PartitionContext
from ..op_spec import OpSpec
from ..stats.group_keys import group_keys
from ..stats.keys import KeyKind, key_kind


class DifferenceLag(Op):
    """Adds ``<timestamp>_lag_<shift>``: ``t - t(previous ``shift``-th event of the user)``.

    >>> frame = pd.DataFrame({"user_id": [1, 1, 2, 1], "ts": [100, 160, 50, 400]})
    >>> Workflow(DifferenceLag("user_id", "ts")).fit(frame).transform(frame)["ts_lag_1"].tolist()
    [nan, 60.0, nan, 240.0]
    """

    type_name = "DifferenceLag"
    in_place = False

    class Spec(OpSpec):
        op: Literal["difference_lag"]
        columns: list[str] = Field(min_length=1, max_length=1, description="the user column")
        timestamp: str
        shift: int = Field(1, ge=1)

        def op_params(self) -> dict[str, Any]:
            """The file names the user column as ``columns: [user]``: the op's ``partition_col``."""
            params = super().op_params()
            params["partition_col"] = params.pop("columns")[0]
            return params

    def __init__(self, partition_col: str, timestamp: str, shift: int = 1) -> None:
        for name, v in (("partition_col", partition_col), ("timestamp", timestamp)):
            if not isinstance(v, str) or not v:
                raise ConfigError(f"DifferenceLag: {name} must be a column name, got {v!r}")
        if isinstance(shift, bool) or not isinstance(shift, int) or shift < 1:
            raise ConfigError(f"DifferenceLag: shift must be an int >= 1, got {shift!r}")
        self.partition_col = partition_col
        self.timestamp = timestamp
        self.shift = shift
        self.kinds_: dict[str, KeyKind] = {}

    def get_params(self) -> dict[str, Any]:
        return {"partition_col": self.partition_col, "timestamp": self.timestamp,
                "shift": self.shift}

    @property
    def input_columns(self) -> tuple[str, ...]:
        return (self.partition_col, self.timestamp)

    @property
    def output_columns(self) -> tuple[str, ...]:
        return (f"{self.timestamp}_lag_{self.shift}",)

    @property
    def stateful(self) -> bool:
        return False

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        where = self._where()
        self.kinds_ = {self.partition_col: key_kind(dtypes[self.partition_col],
                                                    self.partition_col, where)}
        dtype = dtypes[self.timestamp]
        if not (ptypes.is_numeric_dtype(dtype) or ptypes.is_datetime64_any_dtype(dtype)):
            raise DataError(
                f"{where}: column {self.timestamp!r} has dtype {dtype}; a timestamp must be "
                "numeric or datetime64"
            )

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        where = self._where()
        ts = frame[self.timestamp]
        if ptypes.is_datetime64_any_dtype(ts.dtype):
            t = ts.astype("datetime64[ns]").to_numpy().astype(np.int64).astype(np.float64) / 1e9
            t[ts.isna().to_numpy()] = np.nan
        else:
            t = ts.to_numpy(dtype=np.float64, na_value=np.nan)
        kind = self.kinds_.get(self.partition_col) or key_kind(
            frame[self.partition_col].dtype, self.partition_col, where
        )
        gk = group_keys(frame, [self.partition_col], [kind], where)
        rows = np.flatnonzero(gk.ok)
        out = np.full(len(frame), np.nan)
        order = np.lexsort((t[rows], gk.key))  # by user, then time (NaN last), stable
        srt, key = rows[order], gk.key[order]
        if len(srt) > self.shift:
            same = key[self.shift:] == key[: -self.shift]
            lag = t[srt[self.shift:]] - t[srt[: -self.shift]]
            out[srt[self.shift:]] = np.where(same, lag, np.nan)
        return {self.output_columns[0]: out}

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": ["continuous"], "cardinality": None}

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        return {"kinds": dict(self.kinds_)}, {}

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        self.kinds_ = dict(state.get("kinds", {}))
