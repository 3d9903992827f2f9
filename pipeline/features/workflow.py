"""Workflow: a feature graph (or a list of ops) fitted by distributed reductions and applied
identically to Dask (training) and pandas (serving) frames."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import dask.dataframe as dd
import pandas as pd
from dask.dataframe.utils import make_meta

from pipeline.errors import ConfigError, DataError

from . import persist
from .backend import float_values, is_frame
from .base import ColumnSchema, NotFittedError, Op
from .fitting import FitPass, reduce_stats, transform_data
from .fitting import output_meta as _output_meta
from .graph import Node, as_node
from .ops.categorify import Categorify
from .ops.fill import fill_column
from .plan import Plan, compile_graph, compile_list
from .schema import check_columns, input_schema, output_schema


class Workflow:
    """Feature ops as a graph, or as a list of parallel branches over the input columns.

    Graph form (``Workflow(cats + conts + ["click"])``, built with ``>>`` and ``+``): the output
    is exactly the columns the graph selects; an op fed by ``>>`` reads what the step before it
    wrote, and stateful ops are fitted level by level. ``tags`` tags input columns (for
    ``tag(...)`` selectors and the output schema).

    List form (``Workflow([Categorify([...]), Normalize([...])])``): every op reads the input
    columns; columns no op touches pass through. In-place ops that name the same column compose
    in list order (only the first may learn statistics); new columns are appended in op order.
    """

    def __init__(self, graph: Any, tags: Mapping[str, Sequence[str]] | None = None) -> None:
        self.tags = {str(c): list(t) for c, t in (tags or {}).items()}
        self.graph: Node | None = None
        self.ops: tuple[Op, ...] = ()
        if isinstance(graph, Op):
            graph = [graph]
        is_list = isinstance(graph, Sequence) and not isinstance(graph, str) and graph and all(
            isinstance(op, Op) for op in graph
        )
        if is_list:
            _check_list(list(graph))
            self.ops = tuple(graph)
        elif isinstance(graph, Node) or (
            isinstance(graph, Sequence) and not isinstance(graph, str) and graph
            and any(isinstance(x, Node) for x in graph)
        ):
            self.graph = as_node(graph) if isinstance(graph, Node) else _concat(graph)
        else:
            raise ConfigError(
                "Workflow needs a non-empty list of feature ops or a feature graph "
                f"(columns >> op, joined with +), got {graph!r}"
            )
        self.plan_: Plan | None = None
        self.input_schema_: dict[str, ColumnSchema] | None = None
        self.output_schema_: dict[str, ColumnSchema] | None = None

    def __repr__(self) -> str:
        return f"Workflow({self.graph if self.graph is not None else list(self.ops)!r})"

    # -- fit / transform ----------------------------------------------------------------------

    def fit(self, data: Any, update: bool = False) -> Workflow:
        """Learn every op's statistics from ``data`` (Dask or pandas); returns self.

        ``update=True`` merges ``data``'s statistics into the fitted ones (counts, moments,
        encodings) instead of starting over, so a nightly refit reads only the new rows.
        """
        self._fit(data, out_of_fold=False, update=update)
        return self

    def fit_transform(self, data: Any, update: bool = False) -> Any:
        """Fit, then transform the same rows as *training* rows.

        TargetEncoding gives each row its out-of-fold encoding here (the row's own fold is left
        out of the statistics), so a model never sees its own label through a feature.
        """
        self._fit(data, out_of_fold=True, update=update)
        return transform_data(data, self.plan, out_of_fold=True)

    def transform(self, data: Any) -> Any:
        """Apply the fitted ops: lazily (``map_partitions``) for Dask, eagerly for pandas.

        Results are identical row for row, whichever path and partitioning is used.
        """
        if self.plan_ is None or self.input_schema_ is None:
            raise NotFittedError("this Workflow is not fitted: call fit(data) or Workflow.load")
        self._check_transform_inputs(_columns(data))
        return transform_data(data, self.plan_)

    def _fit(self, data: Any, out_of_fold: bool, update: bool) -> None:
        columns = _columns(data)
        # A loaded graph has no graph object any more: refit its bound steps as they are.
        reuse = self.graph is None and self.plan_ is not None and not self.plan_.keep_raw
        if update or reuse:
            if self.plan_ is None:
                raise NotFittedError(
                    "fit(data, update=True) merges into fitted statistics, but this Workflow is "
                    "not fitted: fit it (or Workflow.load a fitted one) first"
                )
            plan = self.plan_
            needed = plan.raw_columns(range(len(plan.steps)))
            missing = [c for c in needed if c not in set(columns)]
            if missing:
                raise DataError(
                    f"the new data lacks column(s) {missing!r} that this workflow was fitted on. "
                    f"Columns present: {columns!r}"
                )
        else:
            plan = self._compile(data, columns)
        meta = make_meta(data) if isinstance(data, dd.DataFrame) else data.iloc[:0]
        for level in plan.levels():
            sources = FitPass(plan, level, out_of_fold).sources(meta)
            for i, source in zip(level, sources, strict=True):
                plan.steps[i].op.prepare(source.dtypes)
            fit_pass = FitPass(plan, level, out_of_fold)  # snapshots the prepared ops
            needed = plan.raw_columns([*fit_pass.indices, *level])
            source_data = data[needed] if isinstance(data, dd.DataFrame) else data
            rows, stats = reduce_stats(source_data, fit_pass)
            if rows == 0:
                raise DataError("cannot fit the feature workflow on an empty dataset (0 rows)")
            fused = plan.fused_fills()
            for i, new in zip(level, stats, strict=True):
                op = plan.steps[i].op
                if i in fused:  # its fills come earlier in the level: fitted by now
                    new = op.stats_after_fill(new, rows, _landed_fills(plan, fused[i], meta))
                if update:
                    old = op.merged_stats()
                    if old is None:
                        raise ConfigError(
                            f"{op!r} keeps no merged statistics, so fit(update=True) cannot add "
                            "new data to it; refit the workflow on all the data instead"
                        )
                    new = op.merge_stats(old, new)
                op.finish_fit(new)
        self._check_stateless(plan, meta)
        self.plan_ = plan
        if not update or self.input_schema_ is None:
            self.input_schema_ = input_schema(data.dtypes, plan.required_inputs()
                                              if not plan.keep_raw else
                                              {c for op in plan.ops for c in op.required_columns})
        self.output_schema_ = output_schema(_output_meta(meta, plan), plan, self.tags)

    def _compile(self, data: Any, columns: list[str]) -> Plan:
        if self.graph is None:
            check_columns(columns, self.ops, fitting=True)
            return compile_list(self.ops, columns)
        tags_of = {c: list(self.tags.get(c, [])) for c in columns}
        unknown = sorted(set(self.tags) - set(columns))
        if unknown:
            raise DataError(
                f"Workflow(tags=...) tags column(s) {unknown!r} that the data lacks. "
                f"Columns present: {columns!r}"
            )
        return compile_graph(self.graph, tags_of)

    @staticmethod
    def _check_stateless(plan: Plan, meta: pd.DataFrame) -> None:
        """Stateless steps never ran ``prepare`` in a fitting pass: check their dtypes now."""
        stateful_deps = {j for level in plan.levels() for j in level}
        stateful_deps |= {j for level in plan.levels() for j in plan.ancestors(level)}
        rest = [i for i, s in enumerate(plan.steps) if i not in stateful_deps]
        if not rest:
            return
        fit_pass = FitPass(plan, rest, out_of_fold=False)
        for i, source in zip(rest, fit_pass.sources(meta), strict=True):
            plan.steps[i].op.prepare(source.dtypes)

    def _check_transform_inputs(self, columns: list[str]) -> None:
        assert self.plan_ is not None and self.input_schema_ is not None
        have = set(columns)
        missing = [c for c, s in self.input_schema_.items() if s.get("required") and c not in have]
        if not missing:
            return
        needs = []
        for c in missing:
            users = [s.op.type_name for s in self.plan_.steps if c in s.op.required_columns]
            needs.append(f"{c!r} (read by {', '.join(users) or 'the output'})")
        raise DataError(
            f"the data lacks input column(s) {'; '.join(needs)} that this workflow was fitted "
            f"with. Columns present: {columns!r}"
        )

    # -- schema and mappings ------------------------------------------------------------------

    @property
    def plan(self) -> Plan:
        """The compiled, fitted steps."""
        if self.plan_ is None:
            raise NotFittedError("this Workflow is not fitted: call fit(data) or Workflow.load")
        return self.plan_

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
        ops = self.plan_.ops if self.plan_ is not None else self.ops
        for op in ops:
            if isinstance(op, Categorify) and column in op.columns:
                return op.mapping(column)
        encoded = sorted({c for op in ops if isinstance(op, Categorify) for c in op.columns})
        raise ConfigError(
            f"column {column!r} is not categorified by this workflow; categorified: {encoded}"
        )

    # -- persistence --------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``workflow.json`` and the statistics' Parquet files under ``directory``."""
        persist.save_workflow(
            directory, self.plan, self.input_schema, self.output_schema, self.tags
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Workflow:
        """A fitted workflow from a directory written by ``save`` (any older format too)."""
        plan, in_schema, out_schema, tags = persist.load_workflow(directory)
        wf = cls.__new__(cls)
        wf.tags, wf.graph = tags, None
        wf.ops = plan.ops
        wf.plan_ = plan
        wf.input_schema_ = in_schema
        wf.output_schema_ = out_schema
        return wf


def _landed_fills(plan: Plan, fills: list[int], meta: pd.DataFrame) -> dict[str, float]:
    """Each filled column's fill value as the column stores it (a float32 column holds the
    float32 nearest the median), as a float: what the filled rows contribute to statistics."""
    out = {}
    for p in fills:
        for column, value in plan.steps[p].op.fill_values().items():
            empty = pd.Series([None], dtype=meta[column].dtype)
            out[column] = float(float_values(pd.Series(fill_column(empty, value)))[0])
    return out


def _columns(data: Any) -> list[str]:
    if isinstance(data, dd.DataFrame) or is_frame(data):
        return [str(c) for c in data.columns]
    raise ConfigError(
        f"expected a dask.dataframe.DataFrame or pandas.DataFrame, got {type(data).__name__}"
    )


def _concat(items: Sequence[Any]) -> Node:
    node = as_node(items[0])
    for item in items[1:]:
        node = node + item
    return node


def _check_list(ops: Sequence[Op]) -> None:
    """Reject op lists whose outputs clash or whose statistics would not match their inputs."""
    replaced: dict[str, Op] = {}
    created: dict[str, Op] = {}
    for op in ops:
        if not op.input_columns:
            raise ConfigError(
                f"{op!r} has no columns: name them, or use the graph form "
                "(['a', 'b'] >> op) to feed it columns"
            )
        if op.in_place:
            for c in op.output_columns:
                if c in replaced and op.stateful:
                    raise ConfigError(
                        f"{op!r} learns statistics on column {c!r}, which {replaced[c]!r} already "
                        "replaces; in a list every op is fitted on the input columns, so put "
                        "the learning op first, or chain them: [c] >> first >> second"
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
