"""Which ranker a model folder holds, and one way to score with any of them.

Every model folder carries a ranker card (``ranker.json``) whose ``kind`` says what trained it:
``xgboost`` (``pipeline.rankers.xgb``) or ``neural`` (DLRM / DCN-v2, ``pipeline.rankers.neural``).
The recommend and evaluate stages call :func:`load_scorer` and never branch on the kind
themselves. The XGBoost scorer predicts in place from one Fortran-ordered float32 matrix;
torch is imported only for neural models.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client

from pipeline.config import RankerSpec
from pipeline.errors import DataError
from pipeline.rankers.card import CARD_FILE, LOGISTIC, NEURAL, XGBOOST, ranker_card
from pipeline.rankers.logistic import LogisticModel
from pipeline.rankers.xgb import TrainReport, load_ranker, predict, train_xgboost
from pipeline.rows.signals import feature_matrix

if TYPE_CHECKING:  # torch is imported only where a neural model is used
    from pipeline.rankers.neural_train import NeuralTrainReport

class Scorer(Protocol):
    """A loaded ranker: the feature columns it reads and a score per row (higher is better)."""

    kind: str

    @property
    def features(self) -> list[str]: ...

    def score(self, encoded: pd.DataFrame) -> np.ndarray:
        """One float32 score per row of ``encoded`` (the feature workflow's output)."""
        ...


@dataclass(frozen=True)
class XGBoostScorer:
    booster: Any
    features: list[str]
    kind: str = XGBOOST

    def score(self, encoded: pd.DataFrame) -> np.ndarray:
        return predict(self.booster, feature_matrix(encoded, self.features))


@functools.lru_cache(maxsize=4)
def _load(model_dir: str, mtime_ns: int) -> Scorer:
    card = ranker_card(model_dir)
    kind = card.get("kind", XGBOOST)
    if kind == XGBOOST:
        booster, features = load_ranker(model_dir)
        return XGBoostScorer(booster, features)
    if kind == NEURAL:
        from pipeline.rankers.neural.scorer import load_neural_scorer

        return load_neural_scorer(model_dir, int(card.get("score_batch_size", 65_536)))
    if kind == LOGISTIC:
        return LogisticModel.load(Path(model_dir))
    raise DataError(f"{Path(model_dir) / CARD_FILE} names ranker kind {kind!r}; this recpipe "
                    f"knows {XGBOOST!r}, {NEURAL!r} and {LOGISTIC!r}")


def load_scorer(model_dir: str | Path) -> Scorer:
    """The ranker saved in ``model_dir``, cached per process (so once per Dask worker); a
    retrained model (a newer card) is loaded afresh."""
    path = Path(model_dir) / CARD_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise DataError(f"no ranker at {model_dir} ({CARD_FILE} is missing): run the train "
                        "stage first") from None
    return _load(str(model_dir), mtime)


def labelled_scores(frame: pd.DataFrame, model_dir: str) -> pd.DataFrame:
    """``label`` and the ranker's ``score`` for training-style rows (click metrics)."""
    return pd.DataFrame({"label": frame["label"].to_numpy(),
                         "score": load_scorer(model_dir).score(frame)})


def binary_labels(rows: dd.DataFrame) -> dd.DataFrame:
    """``rows`` with their graded ``label`` (0, 1, 2) turned into 0/1 for a pointwise loss."""
    return rows.assign(label=(rows["label"] > 0).astype("float32"))


def train_ranker(
    client: Client, rows: dd.DataFrame, features: list[str], schema: Mapping[str, Any] | None,
    spec: RankerSpec, out: Path, warm_start: Path | None = None,
) -> TrainReport | NeuralTrainReport:
    """Train the ranker ``spec.model`` names on ``rows`` into ``out``; returns its report.
    ``schema`` (the feature workflow's output schema) sizes a neural ranker's embeddings."""
    if spec.is_neural or not spec.objective.startswith("rank:"):
        rows = binary_labels(rows)  # graded relevance is for ranking objectives
    if not spec.is_neural:
        return train_xgboost(client, rows, features, spec, out, warm_start=warm_start)
    if schema is None:
        raise ValueError("a neural ranker needs the feature workflow's output schema")
    from pipeline.rankers.neural_train import train_neural

    return train_neural(client, rows, features, schema, spec, out, warm_start=warm_start)
