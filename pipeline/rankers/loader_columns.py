"""Which columns a model reads: categorical (embedded), continuous, and the label.

Taken from the feature workflow's output schema (``Workflow.output_schema_``: tags
``categorical``, ``continuous``, ``target``; ``cardinality`` sizes embedding tables) or given
explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError

Schema = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class LoaderColumns:
    """Column names by role; ``cardinalities`` (one per categorical) when known."""

    categorical: tuple[str, ...]
    continuous: tuple[str, ...]
    label: str
    cardinalities: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.categorical:
            raise ConfigError("no categorical feature column: a neural ranker needs at least one "
                              "(categorify a column in the feature workflow, or name one)")
        if not self.label:
            raise ConfigError("no label column: tag one 'target' in the feature schema or name it")
        names = [*self.categorical, *self.continuous, self.label]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"column(s) {dup!r} are given more than one role (categorical, "
                              "continuous, label); give each column one role")
        if self.cardinalities is not None and len(self.cardinalities) != len(self.categorical):
            raise ConfigError("one cardinality per categorical column is needed, got "
                              f"{len(self.cardinalities)} for {len(self.categorical)} columns")

    @classmethod
    def from_schema(
        cls,
        schema: Schema,
        *,
        label: str | None = None,
        categorical: Sequence[str] | None = None,
        continuous: Sequence[str] | None = None,
    ) -> LoaderColumns:
        """Roles from the tags of a workflow output schema; explicit names override them.

        The label is the column tagged ``target`` unless ``label`` is given; a schema with no
        categorical or no target column is a ``ConfigError`` naming what to add.
        """
        if not schema:
            raise ConfigError("the feature schema is empty: fit the feature workflow first")
        if label is None:
            targets = [c for c, s in schema.items() if "target" in s.get("tags", [])]
            if len(targets) != 1:
                raise ConfigError(
                    f"the feature schema has {len(targets)} column(s) tagged 'target' "
                    f"({targets!r}); name the label column explicitly (label=...)"
                )
            label = targets[0]
        elif label not in schema:
            raise ConfigError(f"label column {label!r} is not in the feature schema; columns: "
                              f"{list(schema)!r}")
        if categorical is None:
            categorical = [c for c, s in schema.items()
                           if "categorical" in s.get("tags", []) and c != label]
        if continuous is None:
            continuous = [c for c, s in schema.items()
                          if "continuous" in s.get("tags", []) and c != label]
        if not categorical:
            raise ConfigError(
                "the feature schema has no column tagged 'categorical': add a categorify op to "
                "the feature workflow (features: - categorify: {columns: [...]})"
            )
        cards = []
        for name in categorical:
            card = schema.get(name, {}).get("cardinality")
            if not card:
                raise ConfigError(f"the feature schema gives no cardinality for categorical "
                                  f"column {name!r}; categorify it in the feature workflow")
            cards.append(int(card))
        return cls(tuple(categorical), tuple(continuous), label, tuple(cards))
