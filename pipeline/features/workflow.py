"""Workflow: a list of ops fitted together in one distributed pass and applied identically
to Dask (training) and pandas (serving) frames."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import dask.dataframe as dd
import pandas as pd
from dask.dataframe.utils import make_meta

from pipeline.errors import ConfigError, DataError

from . import persist
from .backend import is_frame
from .base import ColumnSchema, NotFittedError, Op
from .categorify import Categorify
from .fitting import fit_stats, output_meta, transform_data
from .schema import check_columns, check_inputs, input_schema, output_schema


class Workflow:
    """Feature ops as parallel branches over the input columns.

    Every op reads the workflow's input columns, so one pass over the data fits all of them.
    Columns no op touches pass through. In-place ops (Categorify, Normalize, FillMissing) that
    name the same column compose in list order; since statistics are fitted on the input, only
    the first in-place op on a column may learn statistics. New columns (TargetEncoding) are
    appended in op order.
    """

    def __init__(self, ops: Sequence[Op]) -> None:
        if isinstance(ops, Op):
            ops = [ops]
        ops = list(ops)
        if not ops or not all(isinstance(op, Op) for op in ops):
            raise ConfigError(f"Workflow needs a non-empty list of feature ops, got {ops!r}")
        _check_graph(ops)
        self.ops: tuple[Op, ...] = tuple(ops)
        self.input_schema_: dict[str, ColumnSchema] | None = None
        self.output_schema_: dict[str, ColumnSchema] | None = None

    def __repr__(self) -> str:
        return f"Workflow({list(self.ops)!r})"

    # -- fit / transform ----------------------------------------------------------------------

    def fit(self, data: Any) -> Workflow:
        """Learn every op's statistics in one pass over ``data`` (Dask or pandas); returns self."""
        self._fit(data, out_of_fold=False)
        return self

    def fit_transform(self, data: Any) -> Any:
        """Fit, then transform the same rows as *training* rows.

        TargetEncoding gives each row its out-of-fold encoding here (the row's own fold is left
        out of the statistics), so a model never sees its own label through a feature.
        """
        self._fit(data, out_of_fold=True)
        return transform_data(data, self.ops, out_of_fold=True)

    def transform(self, data: Any) -> Any:
        """Apply the fitted ops: lazily (``map_partitions``) for Dask, eagerly for pandas.

        Results are identical row for row, whichever path and partitioning is used.
        """
        if self.input_schema_ is None:
            raise NotFittedError("this Workflow is not fitted: call fit(data) or Workflow.load")
        columns = _columns(data)
        check_inputs(columns, self.input_schema_)
        return transform_data(data, self.ops)

    def _fit(self, data: Any, out_of_fold: bool) -> None:
        columns = _columns(data)
        check_columns(columns, self.ops, fitting=True)
        produced = {c for op in self.ops if not op.in_place for c in op.output_columns}
        clash = [c for c in columns if c in produced]
        if clash:
            raise DataError(
                f"the data already has column(s) {clash!r} that this workflow would create; "
                "drop or rename them"
            )
        dtypes = data.dtypes
        for op in self.ops:
            op.prepare(dtypes)
        stateful = [op for op in self.ops if op.stateful]
        # Read only what the statistics need; out-of-fold folds hash whole rows, so keep them.
        source = data
        if not out_of_fold:
            source = data[list(dict.fromkeys(c for op in stateful for c in op.input_columns))]
        rows, stats = fit_stats(source, stateful, out_of_fold)
        if rows == 0:
            raise DataError("cannot fit the feature workflow on an empty dataset (0 rows)")
        for op, op_stats in zip(stateful, stats, strict=True):
            op.finish_fit(op_stats)
        meta = make_meta(data) if isinstance(data, dd.DataFrame) else data.iloc[:0]
        self.input_schema_ = input_schema(dtypes, self.ops)
        self.output_schema_ = output_schema(output_meta(meta, self.ops), self.ops)

    # -- schema and mappings ------------------------------------------------------------------

    @property
    def input_schema(self) -> dict[str, ColumnSchema]:
        """Columns of the fitting data: ``{"dtype": str, "required": bool}``."""
        if self.input_schema_ is None:
            raise NotFittedError("this Workflow is not fitted: it has no input schema yet")
        return self.input_schema_

    @property
    def output_schema(self) -> dict[str, ColumnSchema]:
        """Output columns: ``{"dtype", "tags", "cardinality", "ops", ...}`` each."""
        if self.output_schema_ is None:
            raise NotFittedError("this Workflow is not fitted: it has no output schema yet")
        return self.output_schema_

    def categorify_mapping(self, column: str) -> pd.DataFrame:
        """Reverse mapping of a categorified column: index -> raw ``value`` (and ``count``)."""
        for op in self.ops:
            if isinstance(op, Categorify) and column in op.columns:
                return op.mapping(column)
        encoded = sorted({c for op in self.ops if isinstance(op, Categorify) for c in op.columns})
        raise ConfigError(
            f"column {column!r} is not categorified by this workflow; categorified: {encoded}"
        )

    # -- persistence --------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``workflow.json`` and the statistics' Parquet files under ``directory``."""
        persist.save_workflow(directory, self.ops, self.input_schema, self.output_schema)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Workflow:
        """A fitted workflow from a directory written by ``save``."""
        ops, in_schema, out_schema = persist.load_workflow(directory)
        wf = cls(ops)
        wf.input_schema_ = in_schema
        wf.output_schema_ = out_schema
        return wf


def _columns(data: Any) -> list[str]:
    if isinstance(data, dd.DataFrame) or is_frame(data):
        return list(data.columns)
    raise ConfigError(
        f"expected a dask.dataframe.DataFrame or pandas.DataFrame, got {type(data).__name__}"
    )


def _check_graph(ops: Sequence[Op]) -> None:
    """Reject op lists whose outputs clash or whose statistics would not match their inputs."""
    replaced: dict[str, Op] = {}
    created: dict[str, Op] = {}
    for op in ops:
        if op.in_place:
            for c in op.output_columns:
                if c in replaced and op.stateful:
                    raise ConfigError(
                        f"{op!r} learns statistics on column {c!r}, which {replaced[c]!r} already "
                        "replaces; statistics are fitted on the input column, so put the "
                        "learning op first (Normalize ignores nulls, FillMissing can follow it)"
                    )
                if c in created:
                    raise ConfigError(f"{op!r} and {created[c]!r} both write column {c!r}")
                replaced.setdefault(c, op)
        else:
            for c in op.output_columns:
                if c in created or c in replaced:
                    other = created.get(c) or replaced[c]
                    raise ConfigError(f"{op!r} and {other!r} both write column {c!r}")
                created[c] = op
