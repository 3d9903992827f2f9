"""Saving and loading a fitted workflow: ``workflow.json`` plus one Parquet file per statistic.

No pickle: the manifest is plain JSON and every table is Parquet, so a saved workflow loads in
any later recpipe and a reader could be written in another language. Layout::

    <directory>/
      workflow.json                      format_version, steps (type, params, state, reads,
                                         level), outputs, schemas, input tags
      stats/<NN>_<op type>/<name>.parquet   one per fitted statistic

``workflow.json`` is written last and atomically, so a crashed save never looks complete.

Format history: 1 = a list of ops (parallel branches, pass-through); 2 = a compiled graph: each
op also records the version of each column it reads (``-1`` = the raw input, ``k`` = the output
of op ``k``) and its fitting level, plus the output columns and whether unselected input columns
pass through. Format 1 directories still load (as the list form they were).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import ConfigError

from .base import ColumnSchema, Op, op_types
from .plan import Plan, compile_list, plan_from_saved

FORMAT_VERSION = 2
"""Bump when a saved workflow changes so that older recpipe releases could misread it."""
MANIFEST = "workflow.json"


def _recpipe_version() -> str:
    try:
        return metadata.version("recpipe")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


def _file_name(name: str, taken: set[str]) -> str:
    """A safe, unique file stem for a statistic named after a column."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "stat"
    candidate, n = stem, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}_{n}"
    taken.add(candidate.lower())
    return candidate


def save_workflow(
    directory: str | os.PathLike[str],
    plan: Plan,
    input_schema: dict[str, ColumnSchema],
    output_schema: dict[str, ColumnSchema],
    input_tags: dict[str, list[str]] | None = None,
) -> Path:
    """Write the manifest and statistics of a fitted ``plan`` under ``directory``."""
    ops: Sequence[Op] = plan.ops
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, op in enumerate(ops):
        state, tables = op.save_state()
        files: dict[str, str] = {}
        taken: set[str] = set()
        for name, table in tables.items():
            rel = (
                Path("stats")
                / f"{i:02d}_{op.type_name.lower()}"
                / (_file_name(name, taken) + ".parquet")
            )
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            table.to_parquet(root / rel, index=False)
            files[name] = rel.as_posix()
        step = plan.steps[i]
        entries.append(
            {"type": op.type_name, "params": op.get_params(), "state": state, "tables": files,
             "reads": step.reads, "level": step.level}
        )
    manifest = {
        "format_version": FORMAT_VERSION,
        "recpipe_version": _recpipe_version(),
        "ops": entries,
        "outputs": [[c, v] for c, v in plan.outputs.items()],
        "keep_raw": plan.keep_raw,
        "input_tags": input_tags or {},
        "input_schema": input_schema,
        "output_schema": output_schema,
    }
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, root / MANIFEST)
    return root


def load_workflow(
    directory: str | os.PathLike[str],
) -> tuple[Plan, dict[str, ColumnSchema], dict[str, ColumnSchema], dict[str, list[str]]]:
    """Read what ``save_workflow`` wrote: (fitted plan, input schema, output schema, tags)."""
    root = Path(directory)
    path = root / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{path}: no saved feature workflow here (missing {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the workflow manifest: {exc}") from exc
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"{path}: 'format_version' must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ConfigError(
            f"{path}: written with workflow format_version {version} (by recpipe "
            f"{manifest.get('recpipe_version', '?')}), but this recpipe reads format_version "
            f"<= {FORMAT_VERSION}. Upgrade recpipe to load it"
        )
    entries = manifest.get("ops", [])
    ops = [_load_op(root, path, i, entry) for i, entry in enumerate(entries)]
    try:
        in_schema, out_schema = manifest["input_schema"], manifest["output_schema"]
        if version == 1:
            plan = compile_list(ops, list(in_schema))
        else:
            steps = [
                (op, {str(c): int(v) for c, v in e["reads"].items()}, int(e["level"]))
                for op, e in zip(ops, entries, strict=True)
            ]
            outputs = {str(c): int(v) for c, v in manifest["outputs"]}
            plan = plan_from_saved(steps, outputs, bool(manifest["keep_raw"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: the workflow manifest is incomplete or damaged: {exc!r}"
        ) from exc
    return plan, in_schema, out_schema, dict(manifest.get("input_tags") or {})


def _load_op(root: Path, path: Path, i: int, entry: Any) -> Op:
    types = op_types()
    kind = entry.get("type") if isinstance(entry, dict) else None
    if kind not in types:
        raise ConfigError(
            f"{path}: ops[{i}] has unknown type {kind!r}; known types: {sorted(types)}"
        )
    try:
        op = types[kind](**entry["params"])
        tables = {name: pd.read_parquet(root / rel) for name, rel in entry["tables"].items()}
        op.load_state(entry["state"], tables)
    except (KeyError, TypeError, OSError, ValueError) as exc:
        raise ConfigError(f"{path}: ops[{i}] ({kind}) cannot be loaded: {exc!r}") from exc
    return op
