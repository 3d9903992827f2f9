"""TargetEncoding: a smoothed mean of each target per group value, as new float32 columns."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pydantic import Field

from pipeline.errors import ConfigError, DataError

from ..base import ColumnSchema, PartitionContext, groups_param
from ..op_spec import OpSpec
from ..stats.folds import fold_ids, row_fold_hash
from ..stats.group_keys import GroupKeys, group_keys
from ..stats.keys import KeyKind
from ..stats.te_stats import KeyRanges, TargetStats
from ..stats.te_table import MAX_FOLDS, EncodingTable
from .shared.column_groups import GroupStatsOp


class TargetEncoding(GroupStatsOp):
    """Add ``TE_<cols>_<target>`` for each group of ``columns`` and each target.

    ``columns`` lists groups: a name is a one-column group, a list of names is a multi-column
    group (``[["user_id", "item_id"]]`` -> ``TE_user_id_item_id_<target>``); ``target`` is a
    column name or a list of them. The encoding is ``(sum + p_smooth * mean) / (count +
    p_smooth)``, ``mean`` being the target's global mean; unseen or null keys get ``mean``.
    Targets are needed only to fit. ``Workflow.fit_transform`` gives training rows out-of-fold
    values: a row's fold (of ``kfold``) is a stable hash of ``seed``, the row's key values and
    its index label, never its target (see ``stats.folds``), so it does not depend on the
    partitioning. ``kfold=1`` turns it off.

    >>> frame = pd.DataFrame({"item_id": [1, 1, 2, 2], "click": [1, 1, 0, 1]})
    >>> te = TargetEncoding(["item_id"], target="click", p_smooth=1)
    >>> Workflow(te).fit(frame).transform(frame)["TE_item_id_click"].tolist()  # prior 0.75
    [0.91666..., 0.91666..., 0.58333..., 0.58333...]
    """

    type_name = "TargetEncoding"

    class Spec(OpSpec):
        op: Literal["target_encoding"]
        columns: list[str | list[str]] = Field(min_length=1)
        target: str | list[str]
        p_smooth: float = Field(20.0, ge=0)
        kfold: int = Field(5, ge=1)
        seed: int = 0

    def __init__(
        self,
        columns: str | Sequence[str | Sequence[str]] | None,
        target: str | Sequence[str],
        p_smooth: float = 20.0,
        kfold: int = 5,
        seed: int = 0,
    ) -> None:
        if isinstance(columns, str):
            columns = [columns]
        if columns is not None and (not isinstance(columns, Sequence) or not columns):
            raise ConfigError(f"TargetEncoding: columns must be a non-empty list, got {columns!r}")
        self.groups = self.groups_of(columns, "TargetEncoding")
        self.targets = _targets(target)
        for g in self.groups:
            both = sorted(set(g) & set(self.targets))
            if both:
                raise ConfigError(f"TargetEncoding: target {both[0]!r} is also a key column")
        if isinstance(p_smooth, bool) or not isinstance(p_smooth, int | float) or p_smooth < 0:
            raise ConfigError(f"TargetEncoding: p_smooth must be a number >= 0, got {p_smooth!r}")
        if isinstance(kfold, bool) or not isinstance(kfold, int) or not 1 <= kfold <= MAX_FOLDS:
            raise ConfigError(
                f"TargetEncoding: kfold must be an int from 1 to {MAX_FOLDS}, got {kfold!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"TargetEncoding: seed must be an int, got {seed!r}")
        self.p_smooth = float(p_smooth)
        self.kfold = kfold
        self.seed = seed
        self.kinds_: dict[str, KeyKind] = {}
        self.stats_: dict[str, TargetStats | KeyRanges] | None = None
        self._tables: dict[tuple[str, bool], EncodingTable] = {}
        names = [self.output_name(g, t) for g in self.groups for t in self.targets]
        if len(set(names)) != len(names):
            raise ConfigError(f"TargetEncoding: columns {columns!r} repeat a group")

    @property
    def target(self) -> str:
        """The first target (the schema tags every target column as ``target``)."""
        return self.targets[0]

    def output_name(self, group: Sequence[str], target: str | None = None) -> str:
        return "TE_" + "_".join(group) + "_" + (target or self.target)

    def _outputs(self) -> list[tuple[str, tuple[str, ...], str]]:
        return [(self.output_name(g, t), g, t) for g in self.groups for t in self.targets]

    def get_params(self) -> dict[str, Any]:
        return {
            "columns": groups_param(self.groups),
            "target": self.targets[0] if len(self.targets) == 1 else list(self.targets),
            "p_smooth": self.p_smooth,
            "kfold": self.kfold,
            "seed": self.seed,
        }

    @property
    def value_columns(self) -> tuple[str, ...]:
        return self.targets

    @property
    def output_columns(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self._outputs())

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        super().prepare(dtypes)
        where = self._where()
        for t in self.targets:
            dtype = dtypes[t]
            if not ptypes.is_numeric_dtype(dtype) or ptypes.is_complex_dtype(dtype):
                raise DataError(
                    f"{where}: target column {t!r} has dtype {dtype}; it must be numeric "
                    "(0/1 labels or a continuous value). Map labels to numbers first"
                )

    def _folds(self, frame: pd.DataFrame, ctx: PartitionContext) -> np.ndarray | None:
        if not ctx.out_of_fold or self.kfold < 2:
            return None
        return fold_ids(row_fold_hash(frame, self.required_columns), self.seed, self.kfold)

    def _keys(self, frame: pd.DataFrame, group: tuple[str, ...]) -> GroupKeys:
        return group_keys(frame, group, self._kinds(group), self._where(), pack_pairs=True)

    def partition_stats(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, TargetStats]:
        folds = self._folds(frame, ctx)
        n_folds = self.kfold if folds is not None else 1
        ys = {t: frame[t].to_numpy(dtype=np.float64, na_value=np.nan) for t in self.targets}
        stats = {}
        for g in self.groups:
            gk = self._keys(frame, g)
            for t in self.targets:
                stats[self.output_name(g, t)] = TargetStats.from_keys(
                    gk.key, gk.values, gk.ok, ys[t], folds, n_folds, g, self._kinds(g),
                    self._where(), packed=gk.packed,
                )
        return stats

    def merge_stats(
        self, a: dict[str, TargetStats], b: dict[str, TargetStats]
    ) -> dict[str, TargetStats]:
        return self.merge_stats_many([a, b])

    def merge_stats_many(
        self, parts: Sequence[dict[str, TargetStats | KeyRanges]]
    ) -> dict[str, TargetStats]:
        return {name: TargetStats.merge_many([_whole(p[name]) for p in parts], self._where())
                for name in parts[0]}

    splits_stats = True  # a user x item group has about one key per row

    def split_stats(self, stats: dict[str, TargetStats], buckets: int) -> list[Any]:
        cut = {name: s.split(buckets) for name, s in stats.items()}
        return [{name: pieces[b] for name, pieces in cut.items()} for b in range(buckets)]

    def concat_stats(self, pieces: list[dict[str, TargetStats]]) -> dict[str, KeyRanges]:
        # Kept in their key ranges, joined on first use (see KeyRanges).
        names = list(pieces[0])
        return {name: KeyRanges([p.pop(name) for p in pieces]) for name in names}

    def finish_fit(self, stats: dict[str, TargetStats | KeyRanges]) -> None:
        for name, group, target in self._outputs():
            s = stats[name]
            if s.total_count.sum() == 0:
                raise DataError(
                    f"{self._where()}: target column {target!r} has no non-null values"
                )
            if s.n_keys == 0:
                raise DataError(
                    f"{self._where()}: key column(s) {list(group)!r} have no non-null values "
                    f"where {target!r} is set; nothing to encode"
                )
        self.stats_ = dict(stats)
        self._tables = {}

    def _stats(self) -> dict[str, TargetStats]:
        """The fitted statistics, each whole (key ranges left by a distributed fit joined)."""
        stats = self._fitted_stats()
        for name, s in stats.items():
            stats[name] = _whole(s)
        return stats  # type: ignore[return-value]  # all joined now

    def merged_stats(self) -> dict[str, TargetStats] | None:
        return self._stats() if self.stats_ is not None else None

    def for_transform(self, out_of_fold: bool) -> TargetEncoding:
        """Out of fold, when no fitted row had a null target, a copy holding only the keys of
        several folds: every other key encodes to its fold's prior (see ``te_table``), and
        shipping it would have the client join and write, and every worker map, a statistic
        of about a key per row (a user x item pair) of which few keys are needed."""
        stats = self.stats_
        if (not out_of_fold or self.kfold < 2 or stats is None
                or any(s.untargeted or s.n_folds < 2 for s in stats.values())):
            return super().for_transform(out_of_fold)  # type: ignore[return-value]
        shipped = copy.copy(self)
        shipped.stats_ = {name: s.several_folds() for name, s in stats.items()}
        shipped.partial_state = True
        return shipped

    def __copy__(self) -> TargetEncoding:
        # A shallow copy that joins nothing (``copy.copy`` would go through ``__getstate__``);
        # the statistics dict is shared: a later join in either joins both, a refit replaces
        # the dict.
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        copied._tables = {}
        return copied

    def _table(self, name: str, out_of_fold: bool) -> EncodingTable:
        """The encoding table of output ``name`` (derived once per process, see ``te_table``)."""
        if (name, out_of_fold) not in self._tables:
            stats = self._stats()[name]
            self._tables[name, out_of_fold] = EncodingTable.build(stats, self.p_smooth, out_of_fold)
        return self._tables[name, out_of_fold]

    def __getstate__(self) -> dict[str, Any]:
        # The tables are derived: each worker builds its own while the others do the same,
        # rather than the client building them alone while every worker waits, then shipping.
        if self.stats_ is not None:
            self._stats()  # whole: a copy must not carry the ranges to join again
        return {**self.__dict__, "_tables": {}}

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        self._fitted_stats()
        if len(frame) == 0:  # output dtypes (Dask's meta): no table to derive, nothing to join
            return {name: np.zeros(0, np.float32) for name in self.output_columns}
        stats = self._stats()
        folds = self._folds(frame, ctx)
        no_target = {}  # out of fold: rows of a null target, per target that has any
        if folds is not None:
            no_target = {t: m for t in self.targets if (m := frame[t].isna().to_numpy()).any()}
        out = {}
        for g in self.groups:
            gk = self._keys(frame, g)
            for t in self.targets:
                name = self.output_name(g, t)
                table = self._table(name, folds is not None)
                out[name] = table.encode(gk, folds, no_target.get(t), stats[name])
        return out

    def column_schema(self, column: str) -> ColumnSchema:
        for name, group, target in self._outputs():
            if name == column:
                return {
                    "tags": ["continuous", "target_encoding"],
                    "cardinality": None,
                    "source": list(group),
                    "target": target,
                }
        raise KeyError(column)

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        state, tables = {}, {}
        for name, s in self._stats().items():
            state[name] = {
                "kinds": list(s.kinds),
                "n_folds": s.n_folds,
                "total_count": [int(v) for v in s.total_count],
                "total_sum": [float(v) for v in s.total_sum],
            }
            tables[name] = s.table()
        return {"encoders": state}, tables

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        stats = {}
        for name, group, _ in self._outputs():
            saved = state["encoders"][name]
            if "total_count" in saved:
                counts, sums = saved["total_count"], saved["total_sum"]
            else:  # format of the first release: global totals only, one fold
                counts, sums = [saved["global_count"]], [saved["global_sum"]]
            stats[name] = TargetStats.from_table(
                tables[name], group, saved["kinds"], int(saved.get("n_folds", 1)),
                counts, sums, self._where(),
            )
            self.kinds_.update(zip(group, saved["kinds"], strict=True))
        self.stats_ = stats
        self._tables = {}


def _whole(stats: TargetStats | KeyRanges) -> TargetStats:
    return stats.join() if isinstance(stats, KeyRanges) else stats


def _targets(target: str | Sequence[str]) -> tuple[str, ...]:
    targets = (target,) if isinstance(target, str) else tuple(target)
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise ConfigError(
            f"TargetEncoding: target must be a column name or a list of them, got {target!r}"
        )
    if len(set(targets)) != len(targets):
        raise ConfigError(f"TargetEncoding: target {list(targets)!r} names a column twice")
    return targets
