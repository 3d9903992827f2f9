"""The XGBoost ranker on a real Dask cluster: trains, stops early, saves JSON with its features,
continues from the previous night, and refuses labels or models it cannot use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import RankerSpec
from pipeline.errors import DataError
from pipeline.train.xgb import (
    CARD_FILE,
    MODEL_FILE,
    load_ranker,
    predict,
    previous_night_model,
    train_xgboost,
)
from tests.helpers import FEATURES
from tests.helpers import ranker_rows as rows


def spec(**kw: Any) -> RankerSpec:
    return RankerSpec(num_boost_round=200, early_stopping_rounds=5,
                      params={"max_depth": 2, "eta": 0.3}, **kw)


def test_binary_ranker_stops_early_and_saves_json_with_its_features(
        dask_client: Any, tmp_path: Path) -> None:
    out = tmp_path / "model"
    report = train_xgboost(dask_client, rows(), FEATURES, spec(), out)
    assert report.metric == "logloss" and report.valid_rows == 400 and report.train_rows == 1600
    assert report.best_iteration < 199  # early stopping on the validation users fired
    card = json.loads((out / CARD_FILE).read_text())
    assert card["features"] == FEATURES and card["objective"] == "binary:logistic"
    assert json.loads((out / MODEL_FILE).read_text())["learner"]  # XGBoost's own JSON
    booster, features = load_ranker(out)
    assert booster.num_boosted_rounds() == report.best_iteration + 1
    frame = rows().compute()
    scores = predict(booster, frame[features].to_numpy())
    # the model learnt the signal: positives score higher on average
    assert scores[frame["label"] == 1].mean() > scores[frame["label"] == 0].mean() + 0.2


def test_rank_ndcg_trains_with_query_groups(dask_client: Any, tmp_path: Path) -> None:
    report = train_xgboost(dask_client, rows(), FEATURES, spec(objective="rank:ndcg"),
                           tmp_path / "model")
    assert report.metric == "ndcg@10" and 0.5 < report.best_score <= 1.0


def test_warm_start_continues_from_the_previous_night(dask_client: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs" / "w"
    first = train_xgboost(dask_client, rows(0), FEATURES, spec(), runs / "2026-01-01" / "model")
    assert previous_night_model(runs / "2026-01-02") == runs / "2026-01-01" / "model"
    train_xgboost(dask_client, rows(1), FEATURES, spec(warm_start=True),
                  runs / "2026-01-02" / "model")
    card = json.loads((runs / "2026-01-02" / "model" / CARD_FILE).read_text())
    assert card["warm_start"] == str(runs / "2026-01-01" / "model")
    booster, _ = load_ranker(runs / "2026-01-02" / "model")
    assert booster.num_boosted_rounds() >= first.best_iteration + 1


def test_warm_start_with_different_features_is_refused(dask_client: Any,
                                                       tmp_path: Path) -> None:
    runs = tmp_path / "runs" / "w"
    train_xgboost(dask_client, rows(), FEATURES[:2], spec(), runs / "2026-01-01" / "model")
    with pytest.raises(DataError, match=r"different features.*new today: \['f2'\]"):
        train_xgboost(dask_client, rows(), FEATURES, spec(warm_start=True),
                      runs / "2026-01-02" / "model")


@pytest.mark.parametrize(("objective", "label", "message"), [
    ("binary:logistic", 2.0, "needs labels in \\[0, 1\\]"),
    ("rank:ndcg", 0.5, "non-negative integer relevance labels"),
    ("rank:pairwise", -1.0, "non-negative integer relevance labels"),
    ("rank:ndcg", 40.0, "up to 31"),
])
def test_labels_the_objective_cannot_take_are_refused(
        dask_client: Any, tmp_path: Path, objective: str, label: float, message: str) -> None:
    data = rows(n_groups=20)
    data = data.assign(label=data["label"].where(data["qid"] != 3, label))
    with pytest.raises(DataError, match=message):
        train_xgboost(dask_client, data, FEATURES, spec(objective=objective), tmp_path / "m")
