"""Input checks and the input/output schema of a workflow.

The output schema is what downstream stages size models from: per column its dtype (exactly what
``transform`` produces), tags (``categorical``, ``continuous``, ``target_encoding``, ``target``)
and cardinality (embedding-table rows for categorified columns, else None).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from pipeline.errors import DataError

from .base import ColumnSchema, Op


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


def check_inputs(present: Iterable[str], input_schema: dict[str, ColumnSchema]) -> None:
    """For a fitted (or loaded) workflow: every column its ops read must be in the frame."""
    have = list(present)
    missing = [c for c, s in input_schema.items() if s.get("required") and c not in set(have)]
    if missing:
        raise DataError(
            f"the data lacks input column(s) {_names(missing)} that this workflow was fitted "
            f"with. Columns present: {have!r}"
        )


def input_schema(dtypes: pd.Series, ops: Sequence[Op]) -> dict[str, ColumnSchema]:
    """Each column of the fitting data: its dtype and whether transform needs it."""
    required = {c for op in ops for c in op.required_columns}
    return {str(c): {"dtype": str(dtype), "required": c in required} for c, dtype in dtypes.items()}


def output_schema(out_meta: pd.DataFrame, ops: Sequence[Op]) -> dict[str, ColumnSchema]:
    """Schema of ``transform``'s output, from its (empty) output frame and the fitted ops."""
    targets = {getattr(op, "target", None) for op in ops} - {None}
    schema: dict[str, ColumnSchema] = {}
    for column, dtype in out_meta.dtypes.items():
        entry: dict[str, Any] = {"dtype": str(dtype), "tags": [], "cardinality": None, "ops": []}
        for op in ops:
            if column in op.output_columns:
                extra = op.column_schema(column)
                tags = entry["tags"] + [t for t in extra.get("tags", []) if t not in entry["tags"]]
                entry.update({k: v for k, v in extra.items() if v is not None and k != "tags"})
                entry["tags"] = tags
                entry["ops"] = [*entry["ops"], op.type_name]
        if column in targets:
            entry["tags"] = [*entry["tags"], "target"]
        schema[str(column)] = entry
    return schema


def _names(columns: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in columns)
