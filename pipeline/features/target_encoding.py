"""TargetEncoding: a smoothed mean of the target per group value, as a new float32 column."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from pipeline.errors import ConfigError, DataError

from .base import ColumnSchema, NotFittedError, Op, PartitionContext, column_list
from .folds import fold_ids
from .keys import KeyKind, key_kind
from .te_stats import TargetEncoder, TargetStats


class TargetEncoding(Op):
    """Add ``TE_<cols>_<target>`` for each group of ``columns``.

    ``columns`` lists groups: a name is a one-column group, a list of names is a multi-column
    group (``[["user_id", "item_id"]]`` -> ``TE_user_id_item_id_<target>``). The encoding is
    ``(sum + p_smooth * global_mean) / (count + p_smooth)``; unseen or null keys get the global
    mean. The target is needed only to fit. ``Workflow.fit_transform`` gives training rows
    out-of-fold values (``kfold`` folds from a stable hash of ``seed`` and the row's values, see
    ``folds``); ``kfold=1`` turns that off.
    """

    type_name = "TargetEncoding"
    in_place = False

    def __init__(
        self,
        columns: str | Sequence[str | Sequence[str]],
        target: str,
        p_smooth: float = 20.0,
        kfold: int = 5,
        seed: int = 0,
    ) -> None:
        if isinstance(columns, str):
            columns = [columns]
        if not isinstance(columns, Sequence) or not columns:
            raise ConfigError(f"TargetEncoding: columns must be a non-empty list, got {columns!r}")
        self.groups = tuple(column_list(g, "TargetEncoding") for g in columns)
        if not isinstance(target, str) or not target:
            raise ConfigError(f"TargetEncoding: target must be a column name, got {target!r}")
        for g in self.groups:
            if target in g:
                raise ConfigError(f"TargetEncoding: target {target!r} is also a key column")
        if isinstance(p_smooth, bool) or not isinstance(p_smooth, int | float) or p_smooth < 0:
            raise ConfigError(f"TargetEncoding: p_smooth must be a number >= 0, got {p_smooth!r}")
        if isinstance(kfold, bool) or not isinstance(kfold, int) or kfold < 1:
            raise ConfigError(f"TargetEncoding: kfold must be an int >= 1, got {kfold!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"TargetEncoding: seed must be an int, got {seed!r}")
        self.target = target
        self.p_smooth = float(p_smooth)
        self.kfold = kfold
        self.seed = seed
        self.kinds_: dict[str, KeyKind] = {}
        self.encoders_: dict[str, TargetEncoder] | None = None
        names = [self.output_name(g) for g in self.groups]
        if len(set(names)) != len(names):
            raise ConfigError(f"TargetEncoding: columns {columns!r} repeat a group")

    def output_name(self, group: Sequence[str]) -> str:
        return "TE_" + "_".join(group) + "_" + self.target

    def get_params(self) -> dict[str, Any]:
        return {
            "columns": [g[0] if len(g) == 1 else list(g) for g in self.groups],
            "target": self.target,
            "p_smooth": self.p_smooth,
            "kfold": self.kfold,
            "seed": self.seed,
        }

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for g in self.groups for c in g))

    @property
    def input_columns(self) -> tuple[str, ...]:
        return (*self.required_columns, self.target)

    @property
    def output_columns(self) -> tuple[str, ...]:
        return tuple(self.output_name(g) for g in self.groups)

    @property
    def fitted(self) -> bool:
        return self.encoders_ is not None

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        where = self._where()
        self.kinds_ = {c: key_kind(dtypes[c], c, where) for c in self.required_columns}
        dtype = dtypes[self.target]
        if not ptypes.is_numeric_dtype(dtype) or ptypes.is_complex_dtype(dtype):
            raise DataError(
                f"{where}: target column {self.target!r} has dtype {dtype}; it must be numeric "
                "(0/1 labels or a continuous value). Map labels to numbers first"
            )

    def _folds(self, ctx: PartitionContext) -> np.ndarray | None:
        if not ctx.out_of_fold or self.kfold < 2:
            return None
        return fold_ids(ctx.row_hash(), self.seed, self.kfold)

    def partition_stats(
        self, frame: pd.DataFrame, ctx: PartitionContext
    ) -> tuple[TargetStats, ...]:
        folds = self._folds(ctx)
        n_folds = self.kfold if folds is not None else 1
        return tuple(
            TargetStats.from_partition(
                frame, g, [self.kinds_[c] for c in g], self.target, folds, n_folds, self._where()
            )
            for g in self.groups
        )

    def merge_stats(
        self, a: tuple[TargetStats, ...], b: tuple[TargetStats, ...]
    ) -> tuple[TargetStats, ...]:
        return tuple(TargetStats.merge(x, y) for x, y in zip(a, b, strict=True))

    def finish_fit(self, stats: tuple[TargetStats, ...]) -> None:
        encoders = {}
        for g, s in zip(self.groups, stats, strict=True):
            if s.total_count.sum() == 0:
                raise DataError(
                    f"{self._where()}: target column {self.target!r} has no non-null values"
                )
            folds = s if len(s.total_count) > 1 else None
            kinds = [self.kinds_[c] for c in g]
            encoders[self.output_name(g)] = TargetEncoder(
                s.collapse_folds(), kinds, self.p_smooth, folds
            )
        self.encoders_ = encoders

    def _encoders(self) -> dict[str, TargetEncoder]:
        if self.encoders_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        return self.encoders_

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        encoders, where = self._encoders(), self._where()
        folds = self._folds(ctx)
        return {name: enc.encode(frame, where, folds) for name, enc in encoders.items()}

    def column_schema(self, column: str) -> ColumnSchema:
        group = self.groups[self.output_columns.index(column)]
        return {
            "tags": ["continuous", "target_encoding"],
            "cardinality": None,
            "source": list(group),
            "target": self.target,
        }

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        state, tables = {}, {}
        for name, enc in self._encoders().items():
            state[name] = {
                "kinds": list(enc.kinds),
                "global_count": int(enc.global_count),
                "global_sum": enc.global_sum,
            }
            tables[name] = enc.stats.table
        return {"encoders": state}, tables

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        encoders = {}
        for g in self.groups:
            name = self.output_name(g)
            saved = state["encoders"][name]
            table = tables[name].copy()
            table["count"] = table["count"].astype(np.int64)
            table["sum"] = table["sum"].astype(np.float64)
            stats = TargetStats(
                g, table, np.array([saved["global_count"]]), np.array([float(saved["global_sum"])])
            )
            encoders[name] = TargetEncoder(stats, saved["kinds"], self.p_smooth)
            self.kinds_.update(zip(g, saved["kinds"], strict=True))
        self.encoders_ = encoders
