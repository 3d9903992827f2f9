"""The op contract: parameters, a mergeable statistic, a transform, an output schema.

An op is a node that reads named columns of a frame. ``Workflow`` wires ops together, either as a
list (parallel branches over the input columns) or as a graph built with ``>>`` and ``+`` (see
``graph.py``), fitted level by level. Nothing here assumes where an op's input frame comes from:
every method takes the frame (or its dtypes) it should read.

Learned state lives in attributes ending in ``_`` (scikit-learn's convention); ``fit`` never
mutates a fitted state object in place, it replaces it, so a lazily built Dask graph that holds a
copy of an op keeps the state it was built with.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, RecpipeError

from .backend import row_hashes

if TYPE_CHECKING:
    from .op_spec import OpSpec

__all__ = ["Op", "NotFittedError", "PartitionContext", "ColumnSchema", "op_types"]

ColumnSchema = dict[str, Any]
"""One ``output_schema`` entry: ``{"dtype", "tags", "cardinality", ...}``."""

_OP_TYPES: dict[str, type[Op]] = {}


class NotFittedError(RecpipeError):
    """A workflow or op was used before ``fit`` (or ``Workflow.load``) gave it statistics."""


@dataclass
class PartitionContext:
    """What an op may need besides its own columns while fitting or transforming one partition.

    ``out_of_fold`` is set by ``Workflow.fit_transform``: ops that learn from the target then give
    each training row a value computed without that row's fold. Row hashes (for fold assignment)
    are computed once per partition and shared by every op that asks.
    """

    frame: pd.DataFrame
    out_of_fold: bool = False
    _row_hash: np.ndarray | None = field(default=None, repr=False)

    def row_hash(self) -> np.ndarray:
        """Stable per-row hashes of every column of the partition (computed once, lazily)."""
        if self._row_hash is None:
            self._row_hash = row_hashes(self.frame)
        return self._row_hash


def op_types() -> Mapping[str, type[Op]]:
    """Registered op classes by their saved ``type`` name (used by ``Workflow.load``)."""
    return _OP_TYPES


def column_list(columns: str | Sequence[str] | None, op: str) -> tuple[str, ...]:
    """Validate an op's ``columns`` parameter: a non-empty list of distinct column names.

    ``None`` means "not bound yet": the op gets its columns from a graph (``cols >> op``).
    """
    if columns is None:
        return ()
    if isinstance(columns, str):
        columns = [columns]
    cols = tuple(columns)
    if not cols or not all(isinstance(c, str) and c for c in cols):
        raise ConfigError(
            f"{op}: columns must be a non-empty list of column names, got {columns!r}"
        )
    if len(set(cols)) != len(cols):
        raise ConfigError(f"{op}: columns {list(cols)!r} name a column twice")
    return cols


def columns_of(groups: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """Every column named by a list of column groups, once each, in first-seen order."""
    return tuple(dict.fromkeys(c for g in groups for c in g))


def groups_param(groups: Sequence[Sequence[str]]) -> list[str | list[str]]:
    """Column groups as saved parameters: a single column as its name, a group as a list."""
    return [g[0] if len(g) == 1 else list(g) for g in groups]


class Op(ABC):
    """Base class of feature ops.

    Subclasses set ``type_name`` (the name saved in ``workflow.json``), ``in_place`` (whether the
    op replaces its columns or adds new ones) and implement the abstract methods. Ops with
    statistics implement ``partition_stats``/``merge_stats``/``finish_fit``; the workflow runs
    those as one distributed tree reduction. An op that workflow files may name nests its entry's
    model as ``Spec`` (see ``op_spec``).
    """

    type_name: ClassVar[str]
    in_place: ClassVar[bool] = True
    Spec: ClassVar[type[OpSpec] | None] = None
    """The op's entry in a workflow file's ``features:`` list; None: built in Python only."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type_name" in cls.__dict__:
            _OP_TYPES[cls.type_name] = cls

    # -- parameters ---------------------------------------------------------------------------

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as JSON values; ``type(self)(**get_params())`` rebuilds it."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    @abstractmethod
    def input_columns(self) -> tuple[str, ...]:
        """Every column the op reads while fitting."""

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns the op needs at transform time (a target, for instance, is not needed)."""
        return self.input_columns

    @property
    @abstractmethod
    def output_columns(self) -> tuple[str, ...]:
        """Columns the op writes (its input columns when ``in_place``)."""

    # -- fitting ------------------------------------------------------------------------------

    @property
    def stateful(self) -> bool:
        """Whether the op learns statistics in ``fit``."""
        return True

    def prepare(self, dtypes: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Check input dtypes before the data pass; raise ``DataError`` naming the column."""

    def partition_stats(self, frame: pd.DataFrame, ctx: PartitionContext) -> Any:
        """Statistics of one partition (small: never the raw rows)."""
        return None

    def merge_stats(self, a: Any, b: Any) -> Any:
        """Associative merge of two partition statistics."""
        return None

    def merge_stats_many(self, parts: Sequence[Any]) -> Any:
        """Merge of several statistics (one task of the tree reduction); ops whose statistics
        grow with the data override it to merge all at once."""
        merged = parts[0]
        for more in parts[1:]:
            merged = self.merge_stats(merged, more)
        return merged

    fills_nulls = False
    """The op only replaces each column's nulls with one fitted value (``fill_values()``)."""

    absorbs_fills = False
    """The op's statistics of filled columns follow from those of the unfilled columns and the
    fill values (``stats_after_fill``), so an op fed only by fills that read raw columns is
    fitted in the same pass as they are (``Plan.fused_fills``): one read of the data fewer."""

    def stats_after_fill(self, stats: Any, rows: int, fills: Mapping[str, float]) -> Any:
        """Statistics over the filled columns, from ``stats`` over the unfilled ones (``rows``
        rows, every null of column ``c`` becoming ``fills[c]``); for ``absorbs_fills``."""
        raise NotImplementedError(f"{type(self).__name__} does not absorb fills")

    splits_stats = False
    """Whether the op's statistics grow with the data (about a key per row): the fit then cuts
    each partition's statistics into key ranges (``split_stats``) and merges every range on its
    own worker, in parallel, so no task holds, re-sorts or ships the whole up a tree."""

    def split_stats(self, stats: Any, buckets: int) -> list[Any]:
        """``stats`` cut into ``buckets`` disjoint key ranges (the same ranges in every
        partition), each mergeable on its own; for ops with ``splits_stats``."""
        raise NotImplementedError(f"{type(self).__name__} does not split its statistics")

    def concat_stats(self, pieces: list[Any]) -> Any:
        """Inverse of ``split_stats``: the merged key ranges joined back, in order. May
        consume ``pieces`` (they are the client's only copy)."""
        raise NotImplementedError(f"{type(self).__name__} does not split its statistics")

    def finish_fit(self, stats: Any) -> None:  # noqa: B027 - optional hook
        """Turn the merged statistics into the learned ``*_`` attributes."""

    @property
    def fitted(self) -> bool:
        """Whether the op can transform (stateless ops always can)."""
        return True

    # -- transform ----------------------------------------------------------------------------

    @abstractmethod
    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        """New values for ``output_columns`` (arrays aligned with ``frame``'s rows)."""

    def column_schema(self, column: str) -> ColumnSchema:
        """Schema extras for one output column (tags, cardinality); dtype is added by the caller."""
        return {"tags": [], "cardinality": None}

    # -- persistence --------------------------------------------------------------------------

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        """Learned state as (JSON scalars, named tables saved as Parquet)."""
        return {}, {}

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:  # noqa: B027
        """Restore what ``save_state`` returned."""

    def _where(self) -> str:
        """How error messages name this op."""
        return repr(self)

    # -- graph building (``graph.py`` gives ops their ``>>`` and ``+``) -------------------------

    def with_columns(self, columns: Sequence[str | Sequence[str]]) -> Op:
        """A new, unfitted op with these parameters but reading ``columns`` (what ``>>`` does)."""
        cols = [c if isinstance(c, str) else list(c) for c in columns]
        return type(self)(**{**self.get_params(), "columns": cols})

    partial_state: bool = False
    """Set on a copy made by ``for_transform`` that holds only part of the fitted state."""

    def for_transform(self, out_of_fold: bool) -> Op:
        """The copy of this fitted op that a transform pass ships to the workers. Ops whose
        state is larger than one kind of transform needs return a lighter copy (with
        ``partial_state`` set, so it never replaces the fitted op's state)."""
        return copy.copy(self)

    def merged_stats(self) -> Any:
        """The merged statistics the op was fitted from (None if it keeps none).

        ``Workflow.fit(data, update=True)`` merges new partitions' statistics into these; ops
        keep them in ``stats_`` (and round-trip them through save/load) to support that.
        """
        return getattr(self, "stats_", None)


class InPlaceOp(Op):
    """An op that reads ``self.columns`` and replaces each of them with its transformed value."""

    columns: tuple[str, ...]
    in_place: ClassVar[bool] = True

    @property
    def input_columns(self) -> tuple[str, ...]:
        return self.columns

    @property
    def output_columns(self) -> tuple[str, ...]:
        return self.columns
