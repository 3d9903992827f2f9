"""The XGBoost ranker: trained with ``xgboost.dask`` on the cluster that built its rows, saved
in XGBoost's own JSON format beside a JSON card of its feature list, loaded once per worker."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
from distributed import Client

from pipeline.config import RankerSpec
from pipeline.errors import DataError

log = logging.getLogger(__name__)

MODEL_FILE = "model.json"
CARD_FILE = "ranker.json"
DEFAULT_PARAMS: dict[str, Any] = {
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
}


@dataclass(frozen=True)
class TrainReport:
    best_iteration: int
    best_score: float
    metric: str
    train_rows: int
    valid_rows: int
    positives: int


def train_xgboost(
    client: Client, rows: dd.DataFrame, features: list[str], spec: RankerSpec, out: Path
) -> TrainReport:
    """Train on ``rows`` (``features``, ``label``, ``is_valid``, ``qid``) and save the model.

    Early stopping watches the validation users (``is_valid``): log-loss for
    ``binary:logistic``, NDCG@10 per (user, window) group for the ranking objectives.
    """
    import xgboost as xgb
    import xgboost.dask as dxgb

    rows = client.persist(rows)
    counts = rows.groupby("is_valid")["label"].agg(["size", "sum"]).compute()
    n_train = int(counts["size"].get(False, 0))
    n_valid = int(counts["size"].get(True, 0))
    positives = int(counts["sum"].sum())
    if n_train == 0 or positives == 0:
        raise DataError(
            f"the ranker has {n_train} training rows with {positives} positives: no candidate "
            "was interacted with in the label window. Widen split.label_days or the candidate "
            "counts in the workflow file"
        )
    train, valid = rows[~rows["is_valid"]], rows[rows["is_valid"]]
    ranking = spec.objective.startswith("rank:")

    def matrix(part: dd.DataFrame, ref: Any = None) -> Any:
        return dxgb.DaskQuantileDMatrix(client, part[features], part["label"], ref=ref,
                                        qid=part["qid"] if ranking else None)

    dtrain = matrix(train)
    evals = [(dtrain, "train")]
    if n_valid:
        evals.append((matrix(valid, dtrain), "valid"))
    metrics = ["auc", "ndcg@10"] if ranking else ["auc", "logloss"]
    params = {**DEFAULT_PARAMS, **spec.params, "objective": spec.objective,
              "eval_metric": metrics, "seed": spec.seed, "nthread": 1}
    output = dxgb.train(
        client, params, dtrain, num_boost_round=spec.num_boost_round, evals=evals,
        early_stopping_rounds=spec.early_stopping_rounds if n_valid else None,
        verbose_eval=False,
    )
    booster: xgb.Booster = output["booster"]
    history = output["history"]["valid" if n_valid else "train"]
    best_iteration = int(getattr(booster, "best_iteration", spec.num_boost_round - 1))
    metric = metrics[-1]
    report = TrainReport(
        best_iteration=best_iteration,
        best_score=float(history[metric][min(best_iteration, len(history[metric]) - 1)]),
        metric=metric,
        train_rows=n_train,
        valid_rows=n_valid,
        positives=positives,
    )
    if n_valid:
        booster = booster[: best_iteration + 1]
    save_ranker(booster, features, out, {"objective": spec.objective,
                                         "valid_auc": float(history["auc"][best_iteration])})
    log.info("trained XGBoost: %d trees, valid %s %.4f", best_iteration + 1, report.metric,
             report.best_score)
    return report


def save_ranker(booster: Any, features: list[str], out: Path, info: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out / MODEL_FILE))
    card = {"format_version": 1, "kind": "xgboost", "features": features, **info}
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")


@functools.lru_cache(maxsize=4)
def _load(model_dir: str, mtime_ns: int) -> tuple[Any, list[str]]:
    import xgboost as xgb

    card = json.loads((Path(model_dir) / CARD_FILE).read_text())
    booster = xgb.Booster(model_file=str(Path(model_dir) / MODEL_FILE))
    booster.set_param({"nthread": 1})
    return booster, list(card["features"])


def load_ranker(model_dir: str | Path) -> tuple[Any, list[str]]:
    """The booster and its feature order; cached per process (once per Dask worker)."""
    path = Path(model_dir) / MODEL_FILE
    if not path.exists():
        raise DataError(f"no ranker at {path}: run the train stage first")
    return _load(str(model_dir), path.stat().st_mtime_ns)


def predict(booster: Any, matrix: np.ndarray) -> np.ndarray:
    if len(matrix) == 0:
        return np.empty(0, dtype=np.float32)
    return booster.inplace_predict(matrix).astype(np.float32)
