"""The feature graph: column selectors, ``>>`` chains and ``+`` concatenations.

>>> conts = ["num_0", "num_1"] >> FillMedian(None) >> Normalize(None)     # doctest: +SKIP
>>> cats = tag("categorical") >> Categorify(None)                         # doctest: +SKIP
>>> Workflow(cats + conts + ["click"])                                     # doctest: +SKIP

``+`` binds tighter than ``>>`` (Python's precedence), so parenthesise each chain:
``(a >> Op1(None)) + (b >> Op2(None))``; ``a >> Op1(None) + b`` is reported as an error.

A ``Node`` is either a *selection* of the workflow's input columns (by name, or by tag from the
input schema's tags), an *op* applied to the columns its parents output, or a *concatenation* of
its parents' columns. Nothing is resolved until the workflow sees the data's schema: ``compile``
(see ``plan.py``) then binds each op to concrete column names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError

from .base import Op

__all__ = ["Node", "Selector", "Tags", "as_node", "tag"]

Entry = str | tuple[str, ...]
"""One selected item: a column name, or a group of names (a multi-column TargetEncoding key)."""


class Tags:
    """Tag names used in schemas (strings, so user-defined tags are just other strings)."""

    CATEGORICAL = "categorical"
    CONTINUOUS = "continuous"
    USER_ID = "user_id"
    ITEM_ID = "item_id"
    TARGET = "target"
    TARGET_ENCODING = "target_encoding"


@dataclass(frozen=True)
class Selector:
    """Input columns picked by name (or name group) and/or by tag, in that order, no repeats."""

    names: tuple[Entry, ...] = ()
    tags: tuple[str, ...] = ()

    @classmethod
    def of(cls, columns: str | Sequence[Any]) -> Selector:
        if isinstance(columns, str):
            columns = [columns]
        names: list[Entry] = []
        for c in columns:
            if isinstance(c, str) and c:
                names.append(c)
            elif (
                isinstance(c, Sequence) and not isinstance(c, str) and c
                and all(isinstance(x, str) and x for x in c)
            ):
                names.append(tuple(c))
            else:
                raise ConfigError(
                    f"a column selection holds column names or lists of names, got {c!r} "
                    f"in {list(columns)!r}"
                )
        return cls(tuple(names))

    def resolve(self, tags_of: dict[str, list[str]]) -> list[Entry]:
        """Concrete entries, given each available column's tags (in column order)."""
        out: list[Entry] = list(dict.fromkeys(self.names))
        for t in self.tags:
            matched = [c for c, ts in tags_of.items() if t in ts and c not in out]
            if not matched:
                raise ConfigError(
                    f"no input column is tagged {t!r}; tagged columns: "
                    f"{ {c: ts for c, ts in tags_of.items() if ts} }. Tag columns with AddTags "
                    "or Workflow(..., tags={column: [tags]})"
                )
            out.extend(matched)
        return out

    def __repr__(self) -> str:
        parts = [repr(list(self.names))] if self.names else []
        parts += [f"tag({t!r})" for t in self.tags]
        return " + ".join(parts) or "[]"


def tag(*tags: str) -> Node:
    """Select the input columns carrying any of ``tags`` (e.g. ``tag("continuous")``)."""
    if not tags or not all(isinstance(t, str) and t for t in tags):
        raise ConfigError(f"tag() needs one or more tag names, got {tags!r}")
    return Node(selector=Selector(tags=tuple(tags)))


class Node:
    """One node of a feature graph; build with ``>>`` and ``+`` rather than directly."""

    def __init__(
        self,
        parents: Sequence[Node] = (),
        op: Op | None = None,
        selector: Selector | None = None,
    ) -> None:
        self.parents = tuple(parents)
        self.op = op
        self.selector = selector

    def __rshift__(self, op: Any) -> Node:
        if isinstance(op, type) and issubclass(op, Op):
            raise ConfigError(f"'>> {op.__name__}' needs an op instance: write {op.__name__}(...)")
        if isinstance(op, Node):
            raise ConfigError(
                f"'>>' feeds columns into one op, got the graph {op!r}. '+' binds tighter than "
                "'>>': parenthesise each chain, as in (cols >> Op(...)) + (more >> Op2(...))"
            )
        if not isinstance(op, Op):
            raise ConfigError(f"'>>' feeds columns into a feature op, got {op!r}")
        return Node(parents=(self,), op=op)

    def __add__(self, other: Any) -> Node:
        return Node(parents=(self, as_node(other)))

    def __radd__(self, other: Any) -> Node:
        return Node(parents=(as_node(other), self))

    def __repr__(self) -> str:
        if self.selector is not None:
            return repr(self.selector)
        if self.op is not None:
            return f"{self.parents[0]!r} >> {self.op!r}" if self.parents else repr(self.op)
        return "(" + " + ".join(repr(p) for p in self.parents) + ")"


def as_node(obj: Any) -> Node:
    """A node from a node, an op (reading its own columns), a selector, or column names."""
    if isinstance(obj, Node):
        return obj
    if isinstance(obj, Selector):
        return Node(selector=obj)
    if isinstance(obj, Op):
        return Node(op=obj)
    if isinstance(obj, str) or (isinstance(obj, Sequence) and not isinstance(obj, bytes)):
        return Node(selector=Selector.of(obj))
    raise ConfigError(
        f"cannot use {obj!r} in a feature graph: expected column names, tag(...), an op or a node"
    )


# An op in a graph expression: the op contract (``base.py``) knows nothing of graphs, so the
# operators that build them are given to ``Op`` here.


def _fed_by(op: Op, columns: Any) -> Node:
    """``columns >> op``: the op reads what ``columns`` select."""
    return as_node(columns) >> op


def _feeds(op: Op, other: Any) -> Node:
    """``op >> other``: ``other`` reads what the op writes."""
    return as_node(op) >> other


def _plus(op: Op, other: Any) -> Node:
    """``op + other``: both outputs, side by side."""
    return as_node(op) + other


def _after(op: Op, other: Any) -> Node:
    """``other + op``."""
    return as_node(other) + op


Op.__rrshift__ = _fed_by  # type: ignore[attr-defined]
Op.__rshift__ = _feeds  # type: ignore[attr-defined]
Op.__add__ = _plus  # type: ignore[attr-defined]
Op.__radd__ = _after  # type: ignore[attr-defined]
