"""The bases of ops keyed on groups of columns, which write new columns: statistics per key
joined back onto every row (JoinGroupby, TargetEncoding), or a code per combination of a
group's values (CategorifyCombo, HashedCross)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ...base import NotFittedError, Op, column_list, columns_of
from ...stats.keys import KeyKind, fitted_kinds


class ColumnGroupsOp(Op):
    """``groups`` of key columns (a tuple of names each), read as the kinds ``prepare``
    learns, so every partition keys a value alike."""

    in_place = False
    groups: tuple[tuple[str, ...], ...]
    kinds_: dict[str, KeyKind]

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Every column of every group, once each."""
        return columns_of(self.groups)

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        self.kinds_ = fitted_kinds(dtypes, self.key_columns, self._where())

    def _kinds(self, group: Sequence[str]) -> list[KeyKind]:
        return [self.kinds_[c] for c in group]


class GroupStatsOp(ColumnGroupsOp):
    """Statistics of ``value_columns`` per key of each group, fitted into ``stats_`` and joined
    back onto every row; only the keys are needed to transform."""

    value_columns: tuple[str, ...]
    stats_: dict[str, Any] | None

    @staticmethod
    def groups_of(columns: str | Sequence[str | Sequence[str]] | None,
                  op: str) -> tuple[tuple[str, ...], ...]:
        """``columns`` as groups: a name is a one-column group, a list of names one group;
        None: not bound yet (a graph feeds the op its columns)."""
        if isinstance(columns, str):
            columns = [columns]
        return tuple(column_list(g, op) for g in columns or ())

    @property
    def required_columns(self) -> tuple[str, ...]:
        return self.key_columns

    @property
    def input_columns(self) -> tuple[str, ...]:
        return (*self.key_columns, *self.value_columns)

    @property
    def fitted(self) -> bool:
        return self.stats_ is not None

    def _fitted_stats(self) -> dict[str, Any]:
        if self.stats_ is None:
            raise NotFittedError(f"{self._where()} is not fitted; call Workflow.fit first")
        return self.stats_


class ColumnComboOp(ColumnGroupsOp):
    """One output column per group of two or more columns, named after the group's columns
    joined by ``separator``."""

    separator: ClassVar[str]

    @staticmethod
    def groups_of(columns: str | Sequence[str | Sequence[str]] | None,
                  op: str) -> tuple[tuple[str, ...], ...]:
        """``columns`` as groups: a list of lists is one group each, a flat list one group."""
        groups = [columns] if isinstance(columns, str) else list(columns or [])
        if groups and all(isinstance(c, str) for c in groups):
            groups = [groups]  # a flat list is one group
        return tuple(column_list(g, op) for g in groups)

    @classmethod
    def output_name(cls, group: Sequence[str]) -> str:
        return cls.separator.join(group)

    def get_params(self) -> dict[str, Any]:
        return {"columns": [list(g) for g in self.groups]}

    @property
    def input_columns(self) -> tuple[str, ...]:
        return self.key_columns

    @property
    def output_columns(self) -> tuple[str, ...]:
        return tuple(self.output_name(g) for g in self.groups)
