"""A compiled feature graph: ops bound to concrete columns, in an order that can run.

Every value a step reads is pinned to a *version*: the raw input column (``RAW``) or the output
of one earlier step. So in ``(cols >> Categorify) + (cols >> TargetEncoding)`` the encoder reads
the raw ids even though Categorify replaced them, and ``num >> FillMedian >> Normalize`` fits the
normaliser on filled values. A stateful step's *level* is how many stateful steps lie on its
longest upstream path: level 0 is fitted on raw data in the first pass, level 1 on data that
level-0 steps transformed, and so on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.errors import ConfigError, DataError

from .base import Op
from .graph import Entry, Node

RAW = -1
"""Version of a column as it is in the input data."""


@dataclass
class Step:
    """One bound op and the version of every column it reads."""

    op: Op
    reads: dict[str, int]
    level: int = 0

    @property
    def producers(self) -> set[int]:
        return {v for v in self.reads.values() if v != RAW}


@dataclass
class Plan:
    """Steps in a runnable order and the output columns (name -> version)."""

    steps: list[Step]
    outputs: dict[str, int]
    keep_raw: bool = False
    """List-form workflows pass untouched input columns through (graph form outputs only
    what the graph selects)."""
    _last_use: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for i, step in enumerate(self.steps):
            for c, v in step.reads.items():
                self._last_use[(c, v)] = i

    @property
    def ops(self) -> tuple[Op, ...]:
        return tuple(s.op for s in self.steps)

    def levels(self) -> list[list[int]]:
        """Indices of stateful steps, grouped by fitting pass (a step fused with the fills
        that feed it shares their pass)."""
        fused = self.fused_fills()
        by_level: dict[int, list[int]] = {}
        for i, s in enumerate(self.steps):
            if s.op.stateful:
                by_level.setdefault(s.level - (i in fused), []).append(i)
        return [by_level[k] for k in sorted(by_level)]

    def fused_fills(self) -> dict[int, list[int]]:
        """Steps fitted in one pass with the fills feeding them: step -> its fill steps.

        ``num >> FillMedian >> Normalize`` fits Normalize on filled values, which would take a
        second pass over the data once the medians are known. Normalize's moments of the
        filled columns follow exactly from the moments of the raw non-null values, the null
        counts and the fill values, so it is fitted on the raw columns beside FillMedian.
        Only when every column the step reads comes from a fitted fill of a raw column, and no
        step drops rows (the null counts come from the pass's row count).
        """
        if any(getattr(s.op, "filters_rows", False) for s in self.steps):
            return {}
        fused = {}
        for i, s in enumerate(self.steps):
            if not (s.op.stateful and s.op.absorbs_fills) or RAW in s.reads.values():
                continue
            fills = sorted(s.producers)
            if all(
                self.steps[p].op.fills_nulls and self.steps[p].op.stateful
                and all(v == RAW for v in self.steps[p].reads.values())
                for p in fills
            ):
                fused[i] = fills
        return fused

    def ancestors(self, indices: Sequence[int]) -> list[int]:
        """Every step the given ones read from, directly or not (runnable order)."""
        seen: set[int] = set()
        todo = [p for i in indices for p in self.steps[i].producers]
        while todo:
            i = todo.pop()
            if i not in seen:
                seen.add(i)
                todo.extend(self.steps[i].producers)
        return sorted(seen)

    def raw_columns(self, indices: Sequence[int]) -> list[str]:
        """Input columns that the given steps read as they are in the data."""
        return list(
            dict.fromkeys(c for i in indices for c, v in self.steps[i].reads.items() if v == RAW)
        )

    def last_use(self, column: str, version: int) -> int:
        """Index of the last step that reads this version (-1: none)."""
        return self._last_use.get((column, version), -1)

    def targets(self) -> set[str]:
        """Columns some op learns from as its target."""
        found: set[str] = set()
        for op in self.ops:
            t = getattr(op, "target", None)
            found.update([t] if isinstance(t, str) else list(t or ()))
            found.update(getattr(op, "targets", None) or ())
        return found

    def required_inputs(self) -> list[str]:
        """Input columns ``transform`` needs: not targets, which only fitting reads (a target
        the graph outputs as it is is output when present, as at training time)."""
        needed = {c for s in self.steps for c in s.op.required_columns if s.reads.get(c) == RAW}
        if not self.keep_raw:
            targets = self.targets()
            needed |= {c for c, v in self.outputs.items() if v == RAW and c not in targets}
        return sorted(needed)


def _flat(entries: Sequence[Entry]) -> list[str]:
    return list(dict.fromkeys(c for e in entries for c in ((e,) if isinstance(e, str) else e)))


def _bind(op: Op, entries: list[Entry], node: Node) -> Op:
    """The op fed ``entries`` by ``>>``: its own columns if it names them, else bound to them."""
    own = tuple(getattr(op, "groups", None) or getattr(op, "columns", ()) or ())
    if not own:
        return op.with_columns(entries)
    own_flat = _flat([e if isinstance(e, str) else tuple(e) for e in own])
    if set(own_flat) != set(_flat(entries)):
        raise ConfigError(
            f"{op!r} names columns {own_flat} but is fed {_flat(entries)} by '{node.parents[0]!r} "
            f">> ...'; give the op None as its columns to take what '>>' selects"
        )
    return op


class _Compiler:
    """Walks a graph once (shared sub-graphs once), producing steps in dependency order."""

    def __init__(self, tags_of: Mapping[str, list[str]]) -> None:
        self.tags_of = dict(tags_of)
        self.steps: list[Step] = []
        self.memo: dict[int, dict[Entry, int]] = {}
        self.created: dict[str, Op] = {}

    def visit(self, node: Node) -> dict[Entry, int]:
        key = id(node)
        if key not in self.memo:
            self.memo[key] = self._visit(node)
        return self.memo[key]

    def _visit(self, node: Node) -> dict[Entry, int]:
        if node.selector is not None:
            entries = node.selector.resolve(self.tags_of)
            missing = [c for c in _flat(entries) if c not in self.tags_of]
            if missing:
                raise DataError(
                    f"column(s) {missing!r} selected by {node.selector!r} are missing from the "
                    f"data. Columns present: {list(self.tags_of)!r}"
                )
            return dict.fromkeys(entries, RAW)
        inputs: dict[Entry, int] = {}
        for parent in node.parents:
            for entry, version in self.visit(parent).items():
                if inputs.get(entry, version) != version:
                    raise ConfigError(
                        f"two branches feed different versions of column {entry!r} into "
                        f"{node!r}; Rename one of them"
                    )
                inputs[entry] = version
        if node.op is None:
            return inputs
        if node.parents:
            op = _bind(node.op, list(inputs), node)
            versions = {c: v for e, v in inputs.items() for c in _flat([e])}
        else:
            op, versions = node.op, {}
        return dict.fromkeys(self.add(op, versions), len(self.steps) - 1)

    def add(self, op: Op, versions: Mapping[str, int]) -> tuple[str, ...]:
        """Append a step reading ``versions`` (other columns: their raw input)."""
        if not op.input_columns:
            raise ConfigError(
                f"{op!r} has no columns: name them, or feed it columns with '>>' "
                "(e.g. ['a', 'b'] >> Normalize(None))"
            )
        missing = [c for c in op.input_columns if c not in versions and c not in self.tags_of]
        if missing:
            raise DataError(
                f"column(s) missing from the data: {op!r} needs {', '.join(map(repr, missing))}. "
                f"Columns present: {list(self.tags_of)!r}"
            )
        reads = {c: versions.get(c, RAW) for c in op.input_columns}
        level = max(
            (self.steps[v].level + int(self.steps[v].op.stateful) for v in reads.values()
             if v != RAW),
            default=0,
        )
        if not op.in_place:
            for c in op.output_columns:
                if c in self.tags_of:
                    raise DataError(
                        f"the data already has column {c!r} that {op!r} would create; drop or "
                        "rename it"
                    )
                if c in self.created and self.created[c] is not op:
                    raise ConfigError(f"{op!r} and {self.created[c]!r} both write column {c!r}")
                self.created[c] = op
        self.steps.append(Step(op, reads, level))
        return op.output_columns


def compile_graph(root: Node, tags_of: Mapping[str, list[str]]) -> Plan:
    """Bind a graph to the data's columns (name -> tags, in data order)."""
    comp = _Compiler(tags_of)
    outputs: dict[str, int] = {}
    for entry, version in comp.visit(root).items():
        for c in _flat([entry]):
            if outputs.get(c, version) != version:
                raise ConfigError(
                    f"the graph outputs two different versions of column {c!r}; Rename one"
                )
            outputs[c] = version
    return Plan(comp.steps, outputs)


def compile_list(ops: Sequence[Op], columns: Sequence[str]) -> Plan:
    """The list form: in-place ops compose in order on a column, new columns read the input."""
    comp = _Compiler(dict.fromkeys(columns, []))
    current: dict[str, int] = dict.fromkeys(columns, RAW)
    for op in ops:
        versions = {c: current.get(c, RAW) for c in op.input_columns} if op.in_place else {}
        for c in comp.add(op, versions):
            current[c] = len(comp.steps) - 1
    return Plan(comp.steps, current, keep_raw=True)


def plan_from_saved(
    steps: Sequence[tuple[Op, dict[str, int], int]], outputs: dict[str, int], keep_raw: bool
) -> Plan:
    """Rebuild a plan from what ``persist`` saved."""
    return Plan([Step(op, dict(reads), level) for op, reads, level in steps], dict(outputs),
                keep_raw)
