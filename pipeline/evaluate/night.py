"""The evaluate stage: every model and baseline as per-user top-k lists on the temporal holdout,
scored the same way (NDCG, Recall, MAP, coverage, on Dask), the ranker over several seeds.

Seeds: seed 0 is the model the train stage saved; seed ``i > 0`` retrains the same kind of
ranker (XGBoost, DLRM or DCN-v2) on the same rows with seed ``ranker.seed + i`` and a different
(hashed) set of validation users, so the spread covers both sources of run-to-run variation.
Deterministic baselines run once (std 0). The verdict says whether the best ranker beats every
baseline on NDCG@k by more than two standard deviations of the difference.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client

from pipeline.candidates.context import NightContext
from pipeline.config import WorkflowSpec
from pipeline.evaluate.baselines import (
    fit_itemknn,
    fit_logistic,
    popularity_scorer,
    repeat_lists,
    score_lists,
    tune_ease,
)
from pipeline.evaluate.baselines.common import ItemScorer
from pipeline.evaluate.baselines.ease import fit_ease
from pipeline.evaluate.baselines.logistic import LogisticModel, logistic_partition
from pipeline.evaluate.retrieval_recall import retrieval_recall
from pipeline.io import DAY, ITEM, TIME, USER
from pipeline.metrics import click_metrics, ranking_metrics
from pipeline.rankers.ranker import labelled_scores, train_ranker
from pipeline.rankers.tuning import tuned_params
from pipeline.recommend.batch import recommend_partition
from pipeline.rows.build import map_user_partitions, training_partition

log = logging.getLogger(__name__)

RANKERS = ("ranker",)
SUMMARY = ("ndcg", "recall", "map", "coverage")


@dataclass(frozen=True)
class NightData:
    """What the evaluate stage reads from the run: the user-partitioned log, the split times,
    statistics as of a cutoff, the ranker's training rows, its features and model folder."""

    events: dd.DataFrame
    split: dict[str, Any]
    context: Callable[[int], NightContext]
    training_rows: Callable[[], dd.DataFrame]
    features: list[str]
    model_dir: Path
    out: Path
    schema: Mapping[str, Any] | None = None  # the feature workflow's (neural rankers need it)


def reseeded(rows: dd.DataFrame, seed: int, fraction: float) -> dd.DataFrame:
    """The same rows with another hashed choice of validation users (``qid // 64`` is the
    user's hash bucket, so every window of a user stays on the same side)."""

    def split(part: pd.DataFrame) -> pd.DataFrame:
        user = (part["qid"].to_numpy() // 64).astype(np.uint64)
        mixed = pd.util.hash_array(user ^ np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64))
        return part.assign(is_valid=(mixed % np.uint64(1_000_003)) / 1_000_003 < fraction)

    meta = pd.DataFrame({c: pd.Series(dtype=t) for c, t in rows.dtypes.items()})
    return rows.map_partitions(split, meta=meta)


def _logistic_scores(frame: pd.DataFrame, model: LogisticModel) -> pd.DataFrame:
    return pd.DataFrame({"label": frame["label"].to_numpy(), "score": model.predict(frame)})


def summarise(runs: dict[str, list[dict[str, float]]], k: int) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation (ddof=1; 0 for one run) per model of each list metric."""
    table: dict[str, dict[str, Any]] = {}
    for model, results in runs.items():
        row: dict[str, Any] = {"runs": len(results), "users": results[0]["users"]}
        for name in SUMMARY:
            values = np.array([r[f"{name}@{k}"] for r in results], dtype=np.float64)
            row[f"{name}@{k}"] = float(values.mean())
            row[f"{name}@{k}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        table[model] = row
    return table


def verdict(table: dict[str, dict[str, Any]], k: int) -> dict[str, Any]:
    """Does the best ranker beat every baseline on NDCG@k by more than 2 std of the difference
    (``sqrt(std_ranker² + std_baseline²)``)? With one ranker run there is no spread to judge
    by, so ``beaten`` and ``beats_every_baseline`` are None rather than a verdict on noise."""
    key = f"ndcg@{k}"
    rankers = [m for m in table if m in RANKERS]
    if not rankers:
        return {}
    best = max(rankers, key=lambda m: table[m][key])
    judged = table[best].get("runs", 1) >= 2
    margins = {}
    for model, row in table.items():
        if model in RANKERS:
            continue
        diff = table[best][key] - row[key]
        spread = float(np.hypot(table[best][f"{key}_std"], row[f"{key}_std"]))
        margins[model] = {"margin": diff, "std": spread,
                          "beaten": bool(diff > 2 * spread) if judged else None}
    return {"best_ranker": best, "metric": key, "margins": margins,
            "beats_every_baseline": all(m["beaten"] for m in margins.values()) if judged
            else None}


def evaluate_night(client: Client, spec: WorkflowSpec, data: NightData) -> dict[str, Any]:
    """Lists as of the holdout start for users active in the holdout, for every model."""
    ev, k = spec.evaluation, spec.evaluation.k
    holdout, end = data.split["holdout_start"], data.split["last_event"] + 1
    events = data.events
    ctx = data.context(holdout)
    truth = events[events[TIME] >= holdout][[USER, ITEM]]
    popular = ctx.popular
    catalogue = popular[ITEM].to_numpy()

    def measure(lists: dd.DataFrame) -> dict[str, float]:
        return ranking_metrics(lists, truth, k, len(catalogue))

    runs: dict[str, list[dict[str, float]]] = {}
    click: dict[str, dict[str, float]] = {}
    needs_rows = ev.seeds > 1 or "logistic" in ev.baselines
    rows = client.persist(data.training_rows()) if needs_rows else None
    held = client.persist(map_user_partitions(events, training_partition, ctx, end,
                                              data.features, spec.ranker.validation_fraction))
    probabilities = spec.ranker.objective == "binary:logistic"

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock, 3)
        clock = now

    lap("holdout_rows")
    retrieval = retrieval_recall(events, ctx, end)
    log.info("holdout retrieval recall: %s", retrieval["recall"])
    lap("retrieval")
    runs["ranker"] = []
    for i in range(ev.seeds):
        model_dir = data.model_dir if i == 0 else data.out / f"ranker-seed-{i}"
        if i > 0:
            update: dict[str, Any] = {"seed": spec.ranker.seed + i}
            if spec.ranker.is_neural:
                update["warm_start"] = False  # each seed a fresh model, like XGBoost's
            else:
                update["params"] = {**spec.ranker.params, **tuned_params(Path(data.model_dir))}
            seed_spec = spec.ranker.model_copy(update=update)
            train_ranker(client, reseeded(rows, i, spec.ranker.validation_fraction),
                         data.features, data.schema, seed_spec, model_dir)
        lists = map_user_partitions(events, recommend_partition, ctx, str(model_dir), end)
        runs["ranker"].append(measure(lists))
        if i == 0:
            scores = held.map_partitions(labelled_scores, str(model_dir),
                                         meta={"label": "f4", "score": "f4"})
            click["ranker"] = click_metrics(scores, probabilities=probabilities)
        lap("ranker")

    scorers: list[ItemScorer] = []
    extra: dict[str, Any] = {}
    if "popularity" in ev.baselines:
        scorers += [popularity_scorer(popular, "recent"), popularity_scorer(popular, "global")]
    if "itemknn" in ev.baselines:
        scorers.append(fit_itemknn(events, holdout, catalogue, ev.knn_neighbors))
    if "ease" in ev.baselines:
        scorers.append(_tuned_ease(events, data, spec, popular, extra))
        lap("ease_tuning")
    for scorer in scorers:
        lists = score_lists(events, scorer, holdout, end, k, spec.filter.exclude_seen)
        runs[scorer.name] = [measure(lists)]
        lap(scorer.name)
    if "repeat" in ev.baselines:
        runs["repeat"] = [measure(repeat_lists(events, holdout, end, k))]
        lap("repeat")
    if "logistic" in ev.baselines:
        model = fit_logistic(rows[~rows["is_valid"]], data.features)
        model.save(data.out / "logistic")
        lists = map_user_partitions(events, logistic_partition, ctx, model, end)
        runs["logistic"] = [measure(lists)]
        click["logistic"] = click_metrics(
            held.map_partitions(_logistic_scores, model, meta={"label": "f4", "score": "f4"}))
        extra["logistic_iterations"] = model.iterations
        lap("logistic")

    table = summarise(runs, k)
    for model, row in table.items():
        log.info("holdout %-18s NDCG@%d %.4f ± %.4f  Recall@%d %.4f  MAP@%d %.4f  cov %.3f",
                 model, k, row[f"ndcg@{k}"], row[f"ndcg@{k}_std"], k, row[f"recall@{k}"], k,
                 row[f"map@{k}"], row[f"coverage@{k}"])
    return {"metrics": table, "k": k, "seeds": ev.seeds, "click": click,
            "per_seed": {m: [r[f"ndcg@{k}"] for r in rs] for m, rs in runs.items()},
            "verdict": verdict(table, k), "retrieval": retrieval, "timings": timings, **extra}


def _tuned_ease(events: dd.DataFrame, data: NightData, spec: WorkflowSpec,
                popular: pd.DataFrame, extra: dict[str, Any]) -> ItemScorer:
    """EASE^R with λ tuned on the last ``label_days`` before the holdout, refitted up to it."""
    ev, k = spec.evaluation, spec.evaluation.k
    holdout = data.split["holdout_start"]
    valid_start = holdout - int(spec.split.label_days * DAY)
    top = popular.sort_values("pop_count", ascending=False, kind="stable").head(ev.ease_max_items)
    catalogue = top[ITEM].to_numpy()
    # Items first seen after the validation start are unknown to the tuning model.
    known = top["item_age_days"].to_numpy() * DAY > holdout - valid_start
    valid_truth = events[(events[TIME] >= valid_start) & (events[TIME] < holdout)][[USER, ITEM]]

    def score(scorer: ItemScorer) -> float:
        lists = score_lists(events, scorer, valid_start, holdout, k, spec.filter.exclude_seen)
        return ranking_metrics(lists, valid_truth, k)[f"ndcg@{k}"]

    lam, tried = tune_ease(events, valid_start, catalogue[known], score,
                           grid=tuple(ev.ease_lambdas))
    extra["ease"] = {"lambda": lam, "tried": {f"{a:g}": b for a, b in tried.items()}}
    return fit_ease(events, holdout, catalogue, lam)
