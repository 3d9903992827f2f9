"""Input checks and the input/output schema of a workflow.

The output schema is what downstream stages size models from: per column its dtype (exactly what
``transform`` produces), tags (``categorical``, ``continuous``, ``target_encoding``, ``target``,
``user_id``, ``item_id`` and any user tag), cardinality (embedding-table rows for categorified
columns, else None) and, where known, the value range.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from pipeline.errors import DataError

from .base import ColumnSchema, Op
from .plan import RAW, Plan


def check_columns(present: Iterable[str], ops: Sequence[Op], *, fitting: bool) -> None:
    """Raise ``DataError`` naming each missing column, the op that needs it and what is present."""
    have = list(present)
    have_set = set(have)
    problems = []
    for op in ops:
        needed = op.input_columns if fitting else op.required_columns
        missing = [c for c in needed if c not in have_set]
        if missing:
            problems.append(f"{op!r} needs {_names(missing)}")
    if problems:
        raise DataError(
            "column(s) missing from the data: "
            + "; ".join(problems)
            + f". Columns present: {have!r}"
        )


def input_schema(dtypes: pd.Series, required: Iterable[str]) -> dict[str, ColumnSchema]:
    """Each column of the fitting data: its dtype and whether transform needs it."""
    required = set(required)
    return {str(c): {"dtype": str(dtype), "required": c in required} for c, dtype in dtypes.items()}


def lineage(plan: Plan, column: str, version: int) -> list[Op]:
    """The ops that produced this version of ``column``, first to last."""
    ops: list[Op] = []
    while version != RAW:
        step = plan.steps[version]
        ops.append(step.op)
        version = step.reads.get(column, RAW)
    return ops[::-1]


def output_schema(
    out_meta: pd.DataFrame, plan: Plan, input_tags: Mapping[str, Sequence[str]] | None = None
) -> dict[str, ColumnSchema]:
    """Schema of ``transform``'s output, from its (empty) output frame and the fitted plan.

    Tags accumulate along a column's chain of ops (an input tagged ``user_id`` and categorified
    is ``["user_id", "categorical"]``); a column some op uses as its target is tagged ``target``.
    Categorified columns get ``value_range`` ``[0, cardinality - 1]``; ops may add their own
    extras (``min``/``max``, ``source``...).
    """
    tags_in = dict(input_tags or {})
    targets = plan.targets()
    schema: dict[str, ColumnSchema] = {}
    for column, dtype in out_meta.dtypes.items():
        name = str(column)
        version = plan.outputs.get(name, RAW)
        entry: dict[str, Any] = {
            "dtype": str(dtype), "tags": list(tags_in.get(name, [])) if version == RAW or
            plan.steps[version].op.in_place else [], "cardinality": None, "ops": [],
        }
        for op in lineage(plan, name, version):
            extra = op.column_schema(name)
            tags = entry["tags"] + [t for t in extra.get("tags", []) if t not in entry["tags"]]
            entry.update({k: v for k, v in extra.items() if v is not None and k != "tags"})
            entry["tags"] = tags
            entry["ops"] = [*entry["ops"], op.type_name]
        if "categorical" in entry["tags"] and entry.get("cardinality"):
            entry["value_range"] = [0, int(entry["cardinality"]) - 1]
        if name in targets and "target" not in entry["tags"]:
            entry["tags"] = [*entry["tags"], "target"]
        schema[name] = entry
    return schema


def _names(columns: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in columns)
