"""JoinGroupby: per-key aggregates of continuous columns, joined back onto every row.

``JoinGroupby(["user_id"], cont_cols=["price"], stats=["count", "mean"])`` adds
``user_id_count`` and ``user_id_price_mean``. The statistic (``group_moments``) is mergeable, so
it fits in the workflow's tree reduction and refits incrementally. Unseen or null keys get count
0 and NaN aggregates; ``std`` is the sample standard deviation (pandas' ``std``; NaN for one row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline.errors import ConfigError, DataError

from ..base import ColumnSchema, NotFittedError, PartitionContext, groups_param
from ..op_spec import OpSpec
from ..stats.group_keys import group_keys
from ..stats.group_moments import GroupMoments, saved_keys
from ..stats.keys import KeyKind
from .shared.column_checks import require_numeric
from .shared.column_groups import GroupStatsOp

STATS = ("count", "sum", "mean", "std")


class JoinGroupby(GroupStatsOp):
    """Group by each of ``columns`` (a name or a list of names per group).

    >>> frame = pd.DataFrame({"user_id": [1, 1, 2], "price": [10.0, 20.0, 5.0]})
    >>> per_user = JoinGroupby(["user_id"], cont_cols=["price"], stats=["count", "mean"])
    >>> Workflow(per_user).fit(frame).transform(frame)
       user_id  price  user_id_count  user_id_price_mean
    0        1   10.0              2                15.0
    1        1   20.0              2                15.0
    2        2    5.0              1                 5.0
    """

    type_name = "JoinGroupby"

    class Spec(OpSpec):
        op: Literal["join_groupby"]
        columns: list[str | list[str]] = Field(min_length=1)
        cont_cols: list[str] = Field(default_factory=list)
        stats: list[Literal["count", "sum", "mean", "std"]] = Field(["count"], min_length=1)

    def __init__(
        self,
        columns: str | Sequence[str | Sequence[str]] | None,
        cont_cols: Sequence[str] = (),
        stats: Sequence[str] = ("count",),
    ) -> None:
        self.groups = self.groups_of(columns, "JoinGroupby")
        self.cont_cols = tuple(cont_cols)
        if isinstance(stats, str):
            stats = [stats]
        unknown = sorted(set(stats) - set(STATS))
        if unknown or not stats:
            raise ConfigError(f"JoinGroupby: stats must be a non-empty subset of {STATS}, got "
                              f"{list(stats)!r}")
        self.stats = tuple(s for s in STATS if s in stats)
        if any(s != "count" for s in self.stats) and not self.cont_cols:
            raise ConfigError("JoinGroupby: sum/mean/std need cont_cols to aggregate")
        self.kinds_: dict[str, KeyKind] = {}
        self.stats_: dict[str, GroupMoments] | None = None

    @staticmethod
    def group_name(group: Sequence[str]) -> str:
        return "_".join(group)

    def _names(self, group: Sequence[str]) -> list[tuple[str, str | None, str]]:
        """(output column, continuous column or None, stat) for one group."""
        g = self.group_name(group)
        out: list[tuple[str, str | None, str]] = []
        if "count" in self.stats:
            out.append((f"{g}_count", None, "count"))
        out += [(f"{g}_{c}_{s}", c, s) for c in self.cont_cols for s in self.stats if s != "count"]
        return out

    def get_params(self) -> dict[str, Any]:
        return {"columns": groups_param(self.groups),
                "cont_cols": list(self.cont_cols), "stats": list(self.stats)}

    @property
    def value_columns(self) -> tuple[str, ...]:
        return self.cont_cols

    @property
    def output_columns(self) -> tuple[str, ...]:
        return tuple(name for g in self.groups for name, _, _ in self._names(g))

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        super().prepare(dtypes)
        require_numeric(dtypes, self.cont_cols, self._where())

    def partition_stats(
        self, frame: pd.DataFrame, ctx: PartitionContext
    ) -> dict[str, GroupMoments]:
        return {
            self.group_name(g): GroupMoments.from_partition(
                frame, g, self._kinds(g), self.cont_cols, self._where()
            )
            for g in self.groups
        }

    def merge_stats(
        self, a: dict[str, GroupMoments], b: dict[str, GroupMoments]
    ) -> dict[str, GroupMoments]:
        return {
            self.group_name(g): GroupMoments.merge(
                a[self.group_name(g)], b[self.group_name(g)], g, self._where()
            )
            for g in self.groups
        }

    def finish_fit(self, stats: dict[str, GroupMoments]) -> None:
        for g in self.groups:
            if len(stats[self.group_name(g)].key) == 0:
                raise DataError(f"{self._where()}: key column(s) {list(g)!r} have no non-null "
                                "values in the fitting data; nothing to group by")
        self.stats_ = dict(stats)

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        stats = self._fitted_stats()
        out: dict[str, Any] = {}
        for g in self.groups:
            st = stats[self.group_name(g)]
            gk = group_keys(frame, g, self._kinds(g), self._where())
            pos = np.full(len(frame), -1, dtype=np.int64)
            pos[gk.ok] = st.lookup(gk.key, gk.values)
            hit, p = pos >= 0, np.maximum(pos, 0)
            for name, c, stat in self._names(g):
                if stat == "count":
                    out[name] = np.where(hit, st.rows[p] if len(st.rows) else 0, 0).astype(np.int64)
                    continue
                j = self.cont_cols.index(c)
                n, mean, m2 = st.count[p, j], st.mean[p, j], st.m2[p, j]
                with np.errstate(invalid="ignore", divide="ignore"):
                    value = {"sum": n * mean, "mean": np.where(n > 0, mean, np.nan),
                             "std": np.where(n > 1, np.sqrt(m2 / np.maximum(n - 1, 1)), np.nan)}
                out[name] = np.where(hit, value[stat], np.nan).astype(np.float32)
        return out

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": ["continuous"], "cardinality": None}

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        if self.stats_ is None:
            raise NotFittedError(f"{self._where()} is not fitted")
        tables = {}
        for g in self.groups:
            st = self.stats_[self.group_name(g)]
            cols: dict[str, Any] = {k: v for k, v in zip(g, st.values, strict=True)}
            cols["__rows__"] = st.rows
            for j, c in enumerate(self.cont_cols):
                cols[f"{c}.count"], cols[f"{c}.mean"], cols[f"{c}.m2"] = (
                    st.count[:, j], st.mean[:, j], st.m2[:, j])
            tables[self.group_name(g)] = pd.DataFrame(cols)
        return {"kinds": dict(self.kinds_)}, tables

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        self.kinds_ = dict(state["kinds"])
        stats = {}
        for g in self.groups:
            t = tables[self.group_name(g)]
            kinds = self._kinds(g)
            key, values, order = saved_keys(t, g, kinds, self._where())

            def col(suffix: str, dtype: Any, order: np.ndarray = order, t: pd.DataFrame = t) -> Any:
                return np.column_stack(
                    [t[f"{c}.{suffix}"].to_numpy(dtype) for c in self.cont_cols]
                )[order] if self.cont_cols else np.zeros((len(t), 0), dtype)

            stats[self.group_name(g)] = GroupMoments(
                tuple(kinds), key, values, t["__rows__"].to_numpy(np.int64)[order],
                col("count", np.int64),
                col("mean", np.float64), col("m2", np.float64))
        self.stats_ = stats
