"""The XGBoost ranker on a real Dask cluster: trains, stops early, saves JSON with its features,
continues from the previous night, and refuses labels or models it cannot use."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
import pytest

from pipeline.config import RankerSpec
from pipeline.errors import DataError
from pipeline.rankers.card import CARD_FILE
from pipeline.rankers.xgb import (
    MODEL_FILE,
    load_ranker,
    pin_partitions,
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


@pytest.mark.parametrize("objective", ["binary:logistic", "rank:ndcg"])
def test_the_same_rows_train_the_same_model(dask_client: Any, tmp_path: Path,
                                            objective: str) -> None:
    """Partitions are pinned to workers, so XGBoost's distributed histograms (and the model)
    do not depend on where the scheduler happened to put them (dmlc/xgboost#7927)."""
    params = {"max_depth": 4, "subsample": 0.8}
    models = []
    for i in range(3):
        data = rows(n_groups=400).repartition(npartitions=8)
        train_xgboost(dask_client, data, FEATURES,
                      RankerSpec(objective=objective, num_boost_round=40,
                                 early_stopping_rounds=5, params=params), tmp_path / str(i))
        models.append((tmp_path / str(i) / MODEL_FILE).read_bytes())
    assert models[0] == models[1] == models[2]


def _slow_part(frame: pd.DataFrame) -> pd.DataFrame:
    time.sleep(1.5)
    return frame


def test_pinned_rows_still_arrive_when_a_worker_leaves(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A task pinned to a worker that is gone would wait forever: placement falls back."""
    from distributed import Client, LocalCluster

    frame = rows().compute()
    parts = [dask.delayed(_slow_part)(frame.iloc[i::4]) for i in range(4)]
    data = dd.from_delayed(parts, meta=frame.iloc[:0])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        doomed = sorted(client.scheduler_info(n_workers=-1)["workers"])[-1]
        client.loop.call_later(0.5, lambda: client.retire_workers([doomed], close_workers=True))
        with caplog.at_level("WARNING", logger="pipeline.rankers.xgb"):
            placed = pin_partitions(client, data, poll_s=0.5)
        assert len(placed.compute()) == len(frame)
    assert "a Dask worker left" in caplog.text
