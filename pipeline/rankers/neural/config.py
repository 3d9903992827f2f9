"""A neural ranker's configuration: architecture, optimiser and the features it reads.

Saved as JSON beside the weights, so a checkpoint says which features (names, roles and
embedding-table sizes) it was trained on; warm start refuses a checkpoint whose features differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from pipeline.errors import ConfigError

from ..loader_columns import LoaderColumns

ModelKind = Literal["dlrm", "dcn"]


@dataclass(frozen=True)
class NeuralConfig:
    """Everything needed to rebuild and retrain a DLRM or DCN-v2 click ranker."""

    categorical: tuple[str, ...]
    cardinalities: tuple[int, ...]
    continuous: tuple[str, ...]
    label: str
    model: ModelKind = "dcn"
    embedding_dim: int = 16
    bottom_mlp: tuple[int, ...] = (64,)  # DLRM: continuous -> embedding_dim
    top_mlp: tuple[int, ...] = (64, 32)  # DLRM: interactions -> logit
    cross_layers: int = 3  # DCN-v2
    deep_mlp: tuple[int, ...] = (128, 64)  # DCN-v2, stacked after the cross network
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 65_536
    epochs: int = 1
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in ("dlrm", "dcn"):
            raise ConfigError(f"ranker.model {self.model!r} is not one of 'dlrm', 'dcn'")
        LoaderColumns(self.categorical, self.continuous, self.label, self.cardinalities)
        if any(c < 1 for c in self.cardinalities):
            raise ConfigError(f"cardinalities must be >= 1, got {self.cardinalities!r}")
        for name in ("embedding_dim", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ranker.{name} must be >= 1, got {getattr(self, name)!r}")

    @classmethod
    def from_columns(cls, columns: LoaderColumns, **params: Any) -> NeuralConfig:
        """A config reading ``columns`` (which must carry cardinalities, e.g. from the schema)."""
        if columns.cardinalities is None:
            raise ConfigError("the neural ranker needs each categorical column's cardinality: "
                              "build the columns with LoaderColumns.from_schema")
        return cls(columns.categorical, columns.cardinalities, columns.continuous,
                   columns.label, **params)

    @property
    def columns(self) -> LoaderColumns:
        return LoaderColumns(self.categorical, self.continuous, self.label, self.cardinalities)

    def features(self) -> dict[str, Any]:
        """What the weights depend on: names, roles and table sizes."""
        return {"categorical": dict(zip(self.categorical, self.cardinalities, strict=True)),
                "continuous": list(self.continuous), "label": self.label}

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NeuralConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown neural ranker setting(s) {unknown!r}; known: "
                              f"{sorted(known)!r}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
