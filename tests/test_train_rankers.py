"""The ranker-loading abstraction: a model folder's card picks the scorer, and each scorer gives
exactly the scores its model's own predict gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataError
from pipeline.train.rankers import load_scorer
from pipeline.train.xgb import predict, save_ranker

FEATURES = ["pop_rank_log", "item_id", "age", "genre", "TE_item_id_relevant"]


def training_rows(n: int = 3_000, seed: int = 0) -> pd.DataFrame:
    """Rows as ``training_partition`` writes them: every feature float32 (codes too), NaNs in
    the raw signals, a 0/1 label that depends on the item and a signal."""
    rng = np.random.default_rng(seed)
    item = rng.integers(2, 40, n)
    signal = rng.normal(3.0, 2.0, n)
    logit = -2.0 + (item % 3 == 0) * 1.5 - 0.5 * (signal - 3.0)
    frame = pd.DataFrame({
        "pop_rank_log": np.where(rng.random(n) < 0.05, np.nan, signal),
        "item_id": item, "age": rng.normal(size=n), "genre": rng.integers(0, 6, n),
        "TE_item_id_relevant": rng.random(n)}).astype(np.float32)
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return frame


def test_xgboost_scorer_gives_the_boosters_predictions(tmp_path: Path) -> None:
    import xgboost as xgb

    rows = training_rows(seed=1)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3},
                        xgb.DMatrix(rows[FEATURES], rows["label"]), num_boost_round=5)
    save_ranker(booster, FEATURES, tmp_path / "model", {"objective": "binary:logistic"})
    scorer = load_scorer(tmp_path / "model")
    assert scorer.kind == "xgboost" and scorer.features == FEATURES
    np.testing.assert_array_equal(scorer.score(rows),
                                  predict(booster, rows[FEATURES].to_numpy(np.float32)))


def test_a_folder_without_a_finished_ranker_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no ranker at .*ranker.json is missing"):
        load_scorer(tmp_path)
    (tmp_path / "ranker.json").write_text(json.dumps({"kind": "forest", "features": []}))
    with pytest.raises(DataError, match="ranker kind 'forest'"):
        load_scorer(tmp_path)
