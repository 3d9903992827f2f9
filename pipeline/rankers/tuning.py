"""Optional hyperparameter search for the XGBoost ranker with Optuna (``ranker.tuning``).

Every trial trains on the same stacked rows (persisted once on the cluster) with early stopping
on the validation users and is scored by that validation metric: NDCG@10 for the ranking
objectives (maximised), log loss for ``binary:logistic`` (minimised). The best trial's model
becomes the night's model, and its parameters go into the model card (``tuned_params``) so the
evaluate stage's extra seeds train with them too. The holdout is never looked at.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import dask.dataframe as dd
from distributed import Client

from pipeline.config import ParamRange, RankerSpec
from pipeline.errors import ConfigError
from pipeline.rankers.card import CARD_FILE
from pipeline.rankers.xgb import TrainReport, train_xgboost

log = logging.getLogger(__name__)

TRIALS_FILE = "trials.json"


def suggest(trial: Any, name: str, space: ParamRange) -> float | int:
    """One parameter value for ``trial`` from its range."""
    if space.integer:
        return trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(name, space.low, space.high, log=space.log)


def tune_xgboost(
    client: Client, rows: dd.DataFrame, features: list[str], spec: RankerSpec, out: Path,
    warm_start: Path | None = None,
) -> tuple[TrainReport, dict[str, Any]]:
    """Run ``spec.tuning.n_trials`` trials; leave the best model in ``out``.

    Trial models go to ``out.parent / "tuning"`` with ``trials.json`` (number, value,
    parameters, seconds per trial). Returns the best trial's report and a summary for the
    manifest.
    """
    try:
        import optuna
    except ImportError as exc:  # an optional dependency
        raise ConfigError(
            "ranker.tuning.n_trials > 0 needs Optuna: pip install 'optuna==5.0.0' "
            "(or set ranker.tuning.n_trials: 0)"
        ) from exc

    tuning = spec.tuning
    if tuning.n_trials < 1:
        raise ConfigError("ranker.tuning.n_trials must be at least 1 to tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = client.persist(rows)
    trials_dir = out.parent / "tuning"
    shutil.rmtree(trials_dir, ignore_errors=True)
    reports: dict[int, TrainReport] = {}
    records: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = {name: suggest(trial, name, r) for name, r in tuning.space.items()}
        trial_spec = spec.model_copy(update={"params": {**spec.params, **params}})
        started = time.perf_counter()
        report = train_xgboost(client, rows, features, trial_spec,
                               trials_dir / f"trial-{trial.number}", warm_start=warm_start)
        reports[trial.number] = report
        records.append({"number": trial.number, "value": report.best_score, "params": params,
                        "best_iteration": report.best_iteration,
                        "seconds": round(time.perf_counter() - started, 3)})
        log.info("tuning trial %d: valid %s %.5f with %s", trial.number, report.metric,
                 report.best_score, params)
        return report.best_score

    direction = "maximize" if spec.objective.startswith("rank:") else "minimize"
    study = optuna.create_study(direction=direction,
                                sampler=optuna.samplers.TPESampler(seed=tuning.seed))
    study.optimize(objective, n_trials=tuning.n_trials, timeout=tuning.timeout_seconds)
    best = study.best_trial
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(trials_dir / f"trial-{best.number}", out)
    card_path = out / CARD_FILE
    card = json.loads(card_path.read_text())
    card["tuned_params"] = dict(best.params)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    (trials_dir / TRIALS_FILE).write_text(json.dumps(records, indent=2) + "\n")
    report = reports[best.number]
    summary = {"n_trials": len(records), "best_trial": best.number, "direction": direction,
               "metric": report.metric, "best_value": report.best_score,
               "tuned_params": dict(best.params), "trials_file": str(trials_dir / TRIALS_FILE)}
    return report, summary


def tuned_params(model_dir: Path) -> dict[str, Any]:
    """The parameters a tuned model was trained with (empty for an untuned model)."""
    card = model_dir / CARD_FILE
    return dict(json.loads(card.read_text()).get("tuned_params", {})) if card.exists() else {}
