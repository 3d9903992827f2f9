"""What ``recpipe validate`` checks beyond the workflow file's keys: the inputs' Parquet schemas
against the column mapping, the label and the feature ops, all reported in one message.

Why one pass that collects: fixing a workflow one error per run wastes a night; reading Parquet
footers costs milliseconds, so everything a run would trip over is found up front.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pipeline.config import WorkflowSpec, label_problem
from pipeline.datasets.movielens import check_fetch_target
from pipeline.errors import ConfigError, DataError
from pipeline.io import ITEM, USER, check_interactions, interaction_roles, parquet_schema


def op_columns(op: Any) -> list[str]:
    """Every input column a feature op names (nested groups flattened)."""
    cols: list[str] = []
    for c in op.columns:
        cols.extend([c] if isinstance(c, str) else c)
    return cols


def op_column_problems(spec: WorkflowSpec, available: Iterable[str],
                       listed: Iterable[str]) -> list[str]:
    """One line per feature op naming columns not in ``available``, with a did-you-mean from
    ``listed`` (every column the ops can read) and the whole list."""
    available, listed = set(available), sorted(set(listed))
    problems = []
    for i, op in enumerate(spec.features):
        missing = [c for c in op_columns(op) if c not in available]
        if not missing:
            continue
        hints = [f"'{c}': did you mean '{m[0]}'?" for c in missing
                 if (m := difflib.get_close_matches(c, listed, n=1))]
        problems.append(
            f"features[{i}] ({op.op}) names column(s) {', '.join(map(repr, missing))} that "
            f"neither the interactions nor the user/item tables have"
            f"{'; ' + '; '.join(hints) if hints else ''}; available: {', '.join(listed)}"
        )
    return problems


def check_op_columns(spec: WorkflowSpec, available: Iterable[str]) -> None:
    """``ConfigError`` listing every op column not in ``available`` (the run's history frame);
    the message lists every column of the inputs, read from their schemas."""
    available = set(available)
    problems = op_column_problems(spec, available, available)
    if problems:
        listed = available | set(input_columns(spec, []))
        raise ConfigError("\n".join(op_column_problems(spec, available, listed)))


def input_columns(spec: WorkflowSpec, problems: list[str]) -> list[str]:
    """The columns feature ops can read (canonical interaction columns, the label, every
    column of the user and item tables); unreadable inputs are added to ``problems``."""
    data, columns = spec.data, []
    inter = data.interactions
    if data.fetch and not inter.path.exists():
        try:
            check_fetch_target(inter.path.parent)
            if inter.path.parent.is_dir() and any(inter.path.parent.iterdir()):
                problems.append(f"data.interactions: {inter.path} does not exist, and "
                                f"{inter.path.parent} already holds a completed fetch; fix "
                                "data.interactions.path")
        except DataError as exc:
            problems.append(str(exc))
        columns += list(interaction_roles(inter))  # written by the fetch
    else:
        try:
            check_interactions(inter)
            columns += list(interaction_roles(inter))
        except DataError as exc:
            problems.append(str(exc))
    columns.append(spec.label.name)
    for table, key, what in ((data.users, USER, "data.users"), (data.items, ITEM, "data.items")):
        if table is None or (data.fetch and not table.path.exists()):
            continue
        try:
            schema = parquet_schema(table.path, what)
        except DataError as exc:
            problems.append(str(exc))
            continue
        if table.key not in schema.names:
            problems.append(f"{what}: {table.path} has no column '{table.key}' (key); it has: "
                            f"{', '.join(schema.names)}. Fix {what}.key in the workflow file.")
        columns += [key if name == table.key else name for name in schema.names]
    return columns


def workflow_problems(spec: WorkflowSpec) -> list[str]:
    """Everything a run of ``spec`` would stop on that can be seen without running it."""
    problems: list[str] = []
    label = label_problem(spec)
    if label:
        problems.append(label)
    columns = input_columns(spec, problems)
    missing = {c for op in spec.features for c in op_columns(op)} - set(columns)
    if missing:  # only then pay for importing the ranker's feature names (torch)
        from pipeline.rows.signals import BASE_SIGNALS

        usable = set(columns) | set(BASE_SIGNALS)
        problems += op_column_problems(spec, usable, columns)
    return problems



