"""The XGBoost ranker: trained with ``xgboost.dask`` on the cluster that built its rows, saved
in XGBoost's own JSON format beside a JSON card of its feature list, loaded once per worker."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
from distributed import Client, wait

from pipeline.config import RankerSpec
from pipeline.errors import DataError
from pipeline.rankers.card import CARD_FILE, XGBOOST, write_ranker_card
from pipeline.rankers.xgb_collective import train_on_cluster

log = logging.getLogger(__name__)

MODEL_FILE = "model.json"
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
    client: Client, rows: dd.DataFrame, features: list[str], spec: RankerSpec, out: Path,
    warm_start: Path | None = None,
) -> TrainReport:
    """Train on ``rows`` (``features``, ``label``, ``is_valid``, ``qid``) and save the model.

    Early stopping watches the validation users (``is_valid``): log-loss for
    ``binary:logistic``, NDCG@10 per (user, window) group for the ranking objectives. Ranking
    rows must be sorted by ``qid`` within each partition, and no group may span partitions.
    ``warm_start`` (a model folder; with ``spec.warm_start``, the previous night's) continues
    boosting from that model, whose features must equal today's.
    """
    import xgboost as xgb
    import xgboost.dask as dxgb

    rows = pin_partitions(client, rows)
    n_train, n_valid, positives = training_row_counts(rows, spec.objective)
    previous = warm_start if warm_start is not None else (
        previous_night_model(out.parent) if spec.warm_start else None)
    base = load_warm_start(previous, features, spec.objective) if previous else None
    train, valid = rows[~rows["is_valid"]], rows[rows["is_valid"]]
    ranking = spec.objective.startswith("rank:")

    def matrix(part: dd.DataFrame, ref: Any = None) -> Any:
        return dxgb.DaskQuantileDMatrix(client, part[features], part["label"], ref=ref,
                                        qid=part["qid"] if ranking else None)

    metrics = ["auc", "ndcg@10"] if ranking else ["auc", "logloss"]
    params = {**DEFAULT_PARAMS, **spec.params, "objective": spec.objective,
              "eval_metric": metrics, "seed": spec.seed, "nthread": 1}
    queries = int(rows["qid"].nunique().compute()) if ranking else n_train + n_valid
    if n_valid and base is None and queries <= CV_MAX_QUERIES and "user_key" in rows:
        return _train_by_folds(client, rows, features, spec, params, matrix, out,
                               (n_train, n_valid, positives))
    dtrain = matrix(train)
    # Only the validation users are scored each round: the training rows' metrics (a sort of
    # every training row per round) would go unused.
    evals = [(matrix(valid, dtrain), "valid")] if n_valid else [(dtrain, "train")]
    output = train_on_cluster(
        client, params, dtrain, num_boost_round=spec.num_boost_round, evals=evals,
        early_stopping_rounds=spec.early_stopping_rounds if n_valid else None,
        verbose_eval=False, xgb_model=base,
    )
    booster: xgb.Booster = output["booster"]
    history = output["history"]["valid" if n_valid else "train"]
    # With a warm start the booster's iterations count the previous model's trees too, while
    # the history holds only today's rounds.
    done = base.num_boosted_rounds() if base is not None else 0
    best_iteration = int(getattr(booster, "best_iteration",
                                 booster.num_boosted_rounds() - 1))
    metric = metrics[-1]
    report = TrainReport(
        best_iteration=best_iteration,
        best_score=float(history[metric][min(best_iteration - done,
                                             len(history[metric]) - 1)]),
        metric=metric,
        train_rows=n_train,
        valid_rows=n_valid,
        positives=positives,
    )
    if n_valid:
        booster = booster[: best_iteration + 1]
    rounds = len(history["auc"])
    save_ranker(booster, features, out, {
        "objective": spec.objective, "seed": spec.seed,
        "valid_auc": float(history["auc"][min(best_iteration - done, rounds - 1)]),
        "warm_start": str(previous) if previous else None})
    log.info("trained XGBoost: %d trees, valid %s %.4f", best_iteration + 1, report.metric,
             report.best_score)
    return report


CV_MAX_QUERIES = 2000  # up to this many (user, window) queries, boost rounds come from folds
CV_FOLDS = 4


def _train_by_folds(client: Client, rows: dd.DataFrame, features: list[str], spec: RankerSpec,
                    params: dict[str, Any], matrix: Any, out: Path,
                    counts: tuple[int, int, int]) -> TrainReport:
    """Few queries: the number of rounds is where the validation metric averaged over
    ``CV_FOLDS`` folds of users peaks (one validation set of a few hundred users is noise that
    early stopping mistakes for a peak after a handful of trees), then one model is trained on
    every row for that many rounds."""
    fold = (rows["user_key"] * CV_FOLDS).astype("int64")
    metric = params["eval_metric"][-1]
    curves = []
    for f in range(CV_FOLDS):
        dtrain = matrix(rows[fold != f])
        output = train_on_cluster(client, params, dtrain, num_boost_round=spec.num_boost_round,
                                  evals=[(matrix(rows[fold == f], dtrain), "valid")],
                                  verbose_eval=False)
        curves.append(np.asarray(output["history"]["valid"][metric], dtype=np.float64))
    mean = np.mean(curves, axis=0)
    best = int(np.argmax(mean) if metric != "logloss" else np.argmin(mean))
    output = train_on_cluster(client, params, matrix(rows), num_boost_round=best + 1,
                              verbose_eval=False)
    n_train, n_valid, positives = counts
    save_ranker(output["booster"], features, out, {
        "objective": spec.objective, "seed": spec.seed, "folds": CV_FOLDS,
        "cv_metric": metric, "cv_score": float(mean[best])})
    log.info("trained XGBoost: %d trees (rounds from %d folds), %s %.4f", best + 1, CV_FOLDS,
             metric, mean[best])
    return TrainReport(best_iteration=best, best_score=float(mean[best]), metric=metric,
                       train_rows=n_train + n_valid, valid_rows=0, positives=positives)


def pin_partitions(client: Client, rows: dd.DataFrame, poll_s: float = 5.0) -> dd.DataFrame:
    """Compute ``rows`` with partition ``i`` of ``n`` on worker ``i * workers // n`` (workers in
    address order) and nowhere else.

    XGBoost's distributed histograms depend on which rows each worker holds; left to the
    scheduler, placement varies from run to run and so does the model (dmlc/xgboost#7927).
    Pinned, the same data on the same cluster shape trains the same model. A task pinned to a
    worker that dies would wait forever, so if a pinned worker leaves before the rows are
    computed, the rows are persisted wherever the scheduler likes instead (and a warning says
    the model may then differ from an undisturbed run's).
    """
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    parts = rows.to_delayed()
    futures = [
        client.compute(part, workers=[workers[i * len(workers) // len(parts)]],
                       allow_other_workers=False)
        for i, part in enumerate(parts)
    ]
    while True:
        try:
            wait(futures, timeout=poll_s)
            break
        except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
            if not set(workers) <= set(client.scheduler_info(n_workers=-1)["workers"]):
                client.cancel(futures)
                log.warning("a Dask worker left while the ranker's rows were placed; placing "
                            "them freely (the model may differ from an undisturbed run's)")
                return client.persist(rows)
    return dd.from_delayed(futures, meta=rows.dtypes.to_dict(), divisions=rows.divisions,
                           verify_meta=False)


def save_ranker(booster: Any, features: list[str], out: Path, info: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out / MODEL_FILE))
    write_ranker_card(out, {"kind": XGBOOST, "features": features, **info})


def training_row_counts(rows: dd.DataFrame, objective: str) -> tuple[int, int, int]:
    """(training rows, validation rows, positives) of ranker rows, after checking that the
    labels suit ``objective`` and that there is something to learn from (clear errors)."""
    label = rows["label"]
    counts, low, high, fractional = dask.compute(
        rows.groupby("is_valid")["label"].agg(["size", "sum"]), label.min(), label.max(),
        (label != label.round()).sum())
    check_labels(objective, float(low), float(high), int(fractional))
    n_train = int(counts["size"].get(False, 0))
    n_valid = int(counts["size"].get(True, 0))
    positives = int(counts["sum"].sum())
    if n_train == 0 or positives == 0:
        raise DataError(
            f"the ranker has {n_train} training rows with {positives} positives: no candidate "
            "was interacted with in the label window. Widen split.label_days or the candidate "
            "counts in the workflow file"
        )
    return n_train, n_valid, positives


def check_labels(objective: str, low: float, high: float, fractional: int) -> None:
    """The label column must hold values the objective can learn from."""
    if objective == "binary:logistic" and (low < 0 or high > 1):
        raise DataError(
            f"ranker.objective binary:logistic needs labels in [0, 1], but column 'label' holds "
            f"values from {low:g} to {high:g}; binarise it (label.min_value) or use rank:ndcg")
    if objective.startswith("rank:") and (low < 0 or fractional):
        raise DataError(
            f"ranker.objective {objective} needs non-negative integer relevance labels, but "
            f"column 'label' holds values from {low:g} to {high:g} ({fractional} not whole)")
    if objective == "rank:ndcg" and high > 31:
        raise DataError(
            f"ranker.objective rank:ndcg takes relevance labels up to 31 (exponential gain), "
            f"but column 'label' reaches {high:g}; rescale the label")


def previous_night_model(run_dir: Path) -> Path | None:
    """The newest earlier night's model folder beside ``run_dir`` (``<runs>/<name>/<date>``)."""
    if not run_dir.parent.is_dir():
        return None
    earlier = sorted(d for d in run_dir.parent.iterdir()
                     if d.is_dir() and d.name < run_dir.name and (d / "model" / MODEL_FILE)
                     .is_file())
    return earlier[-1] / "model" if earlier else None


def load_warm_start(model_dir: Path, features: list[str], objective: str) -> Any:
    """The model to continue from; its features and objective must equal today's."""
    import xgboost as xgb

    card_path = Path(model_dir) / CARD_FILE
    if not card_path.is_file():
        raise DataError(f"warm start: no ranker card at {card_path}; train without "
                        "ranker.warm_start once, or point it at a model folder")
    card = json.loads(card_path.read_text())
    if card.get("kind", "xgboost") != "xgboost":
        raise DataError(f"warm start: the model at {model_dir} is a {card.get('kind')} ranker, "
                        "not an XGBoost one; set ranker.warm_start: false for one night")
    if list(card["features"]) != list(features):
        old, new = card["features"], features
        raise DataError(
            f"warm start: the model at {model_dir} was trained on different features "
            f"(missing today: {sorted(set(old) - set(new))}, new today: "
            f"{sorted(set(new) - set(old))}, order differs: {set(old) == set(new)}); set "
            "ranker.warm_start: false for one night to retrain from scratch")
    if card.get("objective") != objective:
        raise DataError(f"warm start: the model at {model_dir} has objective "
                        f"{card.get('objective')}, today's is {objective}; set "
                        "ranker.warm_start: false for one night")
    return xgb.Booster(model_file=str(Path(model_dir) / MODEL_FILE))


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
