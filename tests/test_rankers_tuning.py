"""Optuna tuning of the XGBoost ranker on a real Dask cluster: the kept model is the best
trial's, its parameters are recorded for the evaluate stage, and bad ranges are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import RankerSpec, parse_workflow
from pipeline.errors import ConfigError
from pipeline.rankers.card import CARD_FILE
from pipeline.rankers.tuning import TRIALS_FILE, tune_xgboost, tuned_params
from pipeline.rankers.xgb import load_ranker, predict
from tests.helpers import FEATURES, ranker_rows

pytest.importorskip("optuna")


def tuning_spec(objective: str, n_trials: int = 4) -> RankerSpec:
    return RankerSpec.model_validate({
        "objective": objective, "num_boost_round": 60, "early_stopping_rounds": 5,
        "tuning": {"n_trials": n_trials, "seed": 1, "space": {
            "max_depth": {"low": 1, "high": 6, "integer": True},
            "eta": {"low": 0.02, "high": 0.5, "log": True}}}})


@pytest.mark.parametrize("objective", ["binary:logistic", "rank:ndcg"])
def test_the_kept_model_is_the_best_trial(dask_client: Any, tmp_path: Path,
                                          objective: str) -> None:
    out = tmp_path / "model"
    report, summary = tune_xgboost(dask_client, ranker_rows(), FEATURES,
                                   tuning_spec(objective), out)
    trials = json.loads((tmp_path / "tuning" / TRIALS_FILE).read_text())
    assert len(trials) == summary["n_trials"] == 4
    values = [t["value"] for t in trials]
    best = max(values) if objective.startswith("rank:") else min(values)
    assert report.best_score == summary["best_value"] == best
    chosen = trials[summary["best_trial"]]
    assert chosen["value"] == best and chosen["params"] == summary["tuned_params"]
    assert {"max_depth", "eta"} == set(chosen["params"])
    assert 1 <= chosen["params"]["max_depth"] <= 6
    # The night's model is the best trial's, byte for byte, and records its parameters.
    kept = tmp_path / "tuning" / f"trial-{summary['best_trial']}" / "model.json"
    assert (out / "model.json").read_bytes() == kept.read_bytes()
    assert tuned_params(out) == chosen["params"]
    assert json.loads((out / CARD_FILE).read_text())["features"] == FEATURES
    booster, features = load_ranker(out)
    frame = ranker_rows().compute()
    assert predict(booster, frame[features].to_numpy()).shape == (len(frame),)


def test_trials_differ_and_an_untuned_model_has_no_tuned_params(
        dask_client: Any, tmp_path: Path) -> None:
    _, summary = tune_xgboost(dask_client, ranker_rows(seed=3), FEATURES,
                              tuning_spec("binary:logistic", n_trials=3), tmp_path / "m")
    trials = json.loads(Path(summary["trials_file"]).read_text())
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 3
    assert len({t["value"] for t in trials}) > 1  # the parameters matter on this data
    assert tuned_params(tmp_path / "nowhere") == {}


@pytest.mark.parametrize(
    ("space", "message"),
    [({"eta": {"low": 0.3, "high": 0.1}}, "must be below high"),
     ({"lambda": {"low": 0.0, "high": 1.0, "log": True}}, "log range needs low > 0")],
)
def test_a_bad_search_range_names_the_key(space: dict, message: str) -> None:
    raw = {"name": "t", "data": {"interactions": {"path": "x.parquet", "columns": {
        "user": "u", "item": "i", "timestamp": "t"}}},
        "ranker": {"tuning": {"n_trials": 2, "space": space}}}
    with pytest.raises(ConfigError, match=message) as err:
        parse_workflow(raw)
    assert "ranker.tuning.space" in str(err.value)
