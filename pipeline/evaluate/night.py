"""The evaluate stage: the ranker and every baseline as per-user top-k lists on the temporal
holdout, scored the same way at a short and a long horizon (NDCG, Recall, MAP, coverage), and
the choice of which lists the night publishes.

Seeds: seed 0 is the model the train stage saved; seed ``i > 0`` retrains the same kind of
ranker on the same rows with seed ``ranker.seed + i`` and another (hashed) set of validation
users, so the spread covers both sources of run-to-run variation. Baselines are deterministic
(std 0): the signal baselines rank the night's own candidates (``pipeline.rankers.signal``), the
logistic baseline is trained on the ranker's rows. The choice: the ranker, unless a baseline's
paired per-user NDCG@k gain over the whole holdout (the horizon the ranker was trained for)
exceeds ``evaluation.publish_best_stderrs`` standard errors; with ``evaluation.publish_best:
false``, always the ranker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client, get_client

from pipeline.candidates.context import NightContext
from pipeline.config import WorkflowSpec
from pipeline.evaluate.holdout import HORIZONS, MEASURES, HoldoutPlan, holdout_partition
from pipeline.progress import Progress
from pipeline.rankers.logistic import fit_logistic
from pipeline.rankers.ranker import binary_labels, train_ranker
from pipeline.rankers.signal import REQUIRES
from pipeline.rankers.tuning import tuned_params
from pipeline.recommend.batch import RANKER

log = logging.getLogger(__name__)

LOGISTIC = "logistic"
# The workflow's baseline names and the lists each stands for.
BASELINE_SOURCES = {"popularity": ("popularity", "popularity_global"), "repeat": ("repeat",),
                    "itemknn": ("itemknn",), "ease": ("ease",), "logistic": (LOGISTIC,)}
GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class NightData:
    """What the evaluate stage reads from the run: the user-partitioned log, the split times,
    the context as of the holdout, the ranker's training rows, its features and model folder."""

    events: dd.DataFrame
    split: dict[str, Any]
    context: NightContext
    training_rows: Callable[[], dd.DataFrame]
    features: list[str]
    model_dir: Path
    out: Path
    schema: Mapping[str, Any] | None = None  # the feature workflow's (neural rankers need it)
    relevant: str = "relevant"


def reseeded(rows: dd.DataFrame, seed: int, fraction: float) -> dd.DataFrame:
    """The same rows with another choice of validation users: ``user_key`` (a user's hash in
    [0, 1)) shifted by a multiple of the golden ratio, so every window of a user moves
    together."""

    def split(part: pd.DataFrame) -> pd.DataFrame:
        shifted = (part["user_key"].to_numpy(dtype=np.float64) + seed * GOLDEN) % 1.0
        return part.assign(is_valid=shifted < fraction)

    meta = pd.DataFrame({c: pd.Series(dtype=t) for c, t in rows.dtypes.items()})
    return rows.map_partitions(split, meta=meta)


def summarise(runs: dict[str, list[dict[str, float]]], k: int) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation (ddof=1; 0 for one run) per model of each list metric."""
    table: dict[str, dict[str, Any]] = {}
    for model, results in runs.items():
        row: dict[str, Any] = {"runs": len(results), "users": results[0]["users"]}
        for name in (*MEASURES, "coverage"):
            values = np.array([r[f"{name}@{k}"] for r in results], dtype=np.float64)
            row[f"{name}@{k}"] = float(values.mean())
            row[f"{name}@{k}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        table[model] = row
    return table


def verdict(table: dict[str, dict[str, Any]], k: int) -> dict[str, Any]:
    """Does the ranker beat every baseline on NDCG@k by more than 2 std of the difference
    (``sqrt(std_ranker² + std_baseline²)``)? With one ranker run there is no spread to judge
    by, so ``beaten`` and ``beats_every_baseline`` are None rather than a verdict on noise."""
    key = f"ndcg@{k}"
    if RANKER not in table:
        return {}
    judged = table[RANKER].get("runs", 1) >= 2
    margins = {}
    for model, row in table.items():
        if model == RANKER:
            continue
        diff = table[RANKER][key] - row[key]
        spread = float(np.hypot(table[RANKER][f"{key}_std"], row[f"{key}_std"]))
        margins[model] = {"margin": diff, "std": spread,
                          "beaten": bool(diff > 2 * spread) if judged else None}
    return {"best_ranker": RANKER, "metric": key, "margins": margins,
            "beats_every_baseline": all(m["beaten"] for m in margins.values()) if judged
            else None}


def choose(table: dict[str, dict[str, Any]], paired: dict[str, np.ndarray], k: int,
           enabled: bool, stderrs: float = 1.0) -> dict[str, Any]:
    """Which lists the night publishes: the ranker's, unless a baseline's paired per-user gain
    in NDCG@k over the long horizon (the horizon the ranker was trained for) exceeds
    ``stderrs`` standard errors; with choosing switched off, always the ranker. The ranker is
    the default because it sees every baseline's signal among its features: a baseline that
    only ties it on one holdout wins by chance, and switching on chance gives worse lists as
    often as better. Each baseline's gain is recorded with its standard error."""
    key = f"ndcg@{k}"
    scores = {name: round(row[key], 6) for name, row in table.items()}
    ranker = paired.get(RANKER, np.zeros(0))
    margins: dict[str, dict[str, float]] = {}
    for name, values in paired.items():
        if name == RANKER or len(values) != len(ranker) or len(values) < 2:
            continue
        diff = values - ranker
        margins[name] = {"gain": round(float(diff.mean()), 6),
                         "stderr": round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 6)}
    winners = {n: m["gain"] for n, m in margins.items()
               if m["gain"] > max(0.0, stderrs * m["stderr"])}
    best = max(winners, key=winners.__getitem__) if winners else RANKER
    published = best if enabled else RANKER
    if published != RANKER:
        reason = (f"{best} beat the ranker by {winners[best]:.4f} {key} (standard error "
                  f"{margins[best]['stderr']:.4f})")
    elif best != RANKER:
        reason = f"choosing is off (evaluation.publish_best); {best} beat the ranker"
    elif any(m["gain"] > 0 for m in margins.values()):  # the report names the closest one
        reason = f"no baseline beat the ranker by more than {stderrs:g} standard error(s)"
    else:
        reason = "no baseline beat the ranker"
    return {"published": published, "metric": key, "horizon": "long", "enabled": enabled,
            "stderrs": stderrs, "reason": reason, "scores": scores,
            "baseline_gain_over_ranker": margins}


def evaluate_night(client: Client, spec: WorkflowSpec, data: NightData,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Lists as of the holdout start for the users active in it, for every source."""
    ev, k = spec.evaluation, spec.evaluation.k
    split = data.split
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock, 3)
        clock = now

    sources: dict[str, str | None] = {RANKER: str(data.model_dir)}
    needs_rows = ev.seeds > 1 or "logistic" in ev.baselines
    rows = client.persist(data.training_rows()) if needs_rows else None
    for i in range(1, ev.seeds):
        model_dir = data.out / f"ranker-seed-{i}"
        update: dict[str, Any] = {"seed": spec.ranker.seed + i}
        if spec.ranker.is_neural:
            update["warm_start"] = False  # each seed a fresh model, like XGBoost's
        else:
            update["params"] = {**spec.ranker.params, **tuned_params(Path(data.model_dir))}
        train_ranker(client, reseeded(rows, i, spec.ranker.validation_fraction), data.features,
                     data.schema, spec.ranker.model_copy(update=update), model_dir)
        sources[f"{RANKER}#{i}"] = str(model_dir)
        lap("ranker_seeds")
    extra: dict[str, Any] = {}
    if "logistic" in ev.baselines:
        model = fit_logistic(binary_labels(rows[~rows["is_valid"]]), data.features)
        model.save(data.out / LOGISTIC)
        sources[LOGISTIC] = str(data.out / LOGISTIC)
        extra["logistic_iterations"] = model.iterations
        lap("logistic")
    for baseline in ev.baselines:
        for name in BASELINE_SOURCES[baseline]:
            if name != LOGISTIC and _available(name, spec):
                sources[name] = None

    active = int(split.get("holdout_users", 0)) or ev.max_users
    plan = HoldoutPlan(sources, split["short_end"], split["last_event"] + 1, data.relevant, k,
                       user_share=min(1.0, ev.max_users / active))
    shared = get_client().scatter(data.context, hash=False)
    parts = tuple((progress or Progress(None)).compute(
        [dask.delayed(holdout_partition)(part, shared, plan)
         for part in data.events.to_delayed()]))
    lap("holdout_lists")
    catalogue = len(data.context.popular)
    tables, users = {}, {}
    for horizon in HORIZONS:
        runs: dict[str, list[dict[str, float]]] = {}
        for name in sources:
            result = _aggregate(parts, name, horizon, k, catalogue)
            runs.setdefault(name.split("#")[0], []).append(result)
        tables[horizon] = summarise(runs, k)
        users[horizon] = sum(p["users"].get(horizon, 0) for p in parts)
    retrieval = _retrieval(parts, spec)
    table = tables["long"]
    for model, row in table.items():
        log.info("holdout %-18s NDCG@%d %.4f ± %.4f  Recall@%d %.4f  (short horizon NDCG %.4f)",
                 model, k, row[f"ndcg@{k}"], row[f"ndcg@{k}_std"], k, row[f"recall@{k}"],
                 tables["short"][model][f"ndcg@{k}"])
    paired = {name: np.concatenate([p["per_user"][name] for p in parts
                                    if name in p["per_user"]])
              for name in sources if "#" not in name}  # the ranker's own seed 0, not its reruns
    choice = choose(table, paired, k, ev.publish_best, ev.publish_best_stderrs)
    choice["model_dir"] = sources.get(choice["published"])  # None: a signal baseline
    log.info("publishing the %s lists: %s", choice["published"], choice["reason"])
    return {"metrics": table, "horizons": {"short": tables["short"], "long": table},
            "horizon_users": users, "horizon_days": {
                "short": round((split["short_end"] - split["holdout_start"]) / 86_400, 2),
                "long": round((split["last_event"] + 1 - split["holdout_start"]) / 86_400, 2)},
            "k": k, "seeds": ev.seeds,
            "per_seed": {m: [r[f"ndcg@{k}"] for r in _per_seed(parts, m, k, catalogue)]
                         for m in table},
            "verdict": verdict(table, k), "choice": choice, "retrieval": retrieval,
            "timings": timings, **extra}


def _available(name: str, spec: WorkflowSpec) -> bool:
    """Whether a signal baseline's generator runs (its score is among the candidates')."""
    needed = REQUIRES.get(name)
    generator = {"ease_score": "ease", "cooc_score": "cooccurrence",
                 "emb_score": "embedding"}.get(needed or "")
    return generator is None or getattr(spec.candidates, generator) is not None


def _aggregate(parts: tuple[dict[str, Any], ...], name: str, horizon: str, k: int,
               catalogue: int) -> dict[str, float]:
    sums = {m: 0.0 for m in ("users", *MEASURES)}
    listed: list[np.ndarray] = []
    for part in parts:
        if name in part["metrics"]:
            for m, value in part["metrics"][name][horizon].items():
                sums[m] += value
            listed.append(part["listed"][name])
    n = sums["users"]
    out = {f"{m}@{k}": (sums[m] / n if n else 0.0) for m in MEASURES}
    items = np.unique(np.concatenate(listed)) if listed else np.empty(0)
    out[f"coverage@{k}"] = len(items) / catalogue if catalogue else 0.0
    out["users"] = int(n)
    return out


def _per_seed(parts: tuple[dict[str, Any], ...], model: str, k: int,
              catalogue: int) -> list[dict[str, float]]:
    names = sorted({n for p in parts for n in p["metrics"] if n.split("#")[0] == model})
    return [_aggregate(parts, n, "long", k, catalogue) for n in names]


def _retrieval(parts: tuple[dict[str, Any], ...], spec: WorkflowSpec) -> dict[str, Any]:
    """Mean recall per generator and of the merged set over the long horizon's users, and the
    mean candidates each proposed per user, at the night's candidate budget."""
    users = sum(p["users"].get("long", 0) for p in parts)
    names = sorted({n for p in parts for n in p["recall"]}, key=lambda n: (n == "merged", n))
    recall = {n: round(sum(p["recall"].get(n, 0.0) for p in parts) / users, 6) if users else 0.0
              for n in names}
    per_user = {n: round(sum(p["candidates"].get(n, 0) for p in parts) / users, 2)
                if users else 0.0 for n in names}
    budget = {"popularity": spec.candidates.popularity.n}
    for name in ("cooccurrence", "repeat", "ease", "embedding"):
        generator = getattr(spec.candidates, name)
        if generator is not None:
            budget[name] = generator.n
    return {"users": int(users), "n": budget, "recall": recall,
            "candidates_per_user": per_user}
