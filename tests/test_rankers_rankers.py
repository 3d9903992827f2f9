"""The ranker-loading abstraction: a model folder's card picks the scorer, and each scorer gives
exactly the scores its model's own predict gives; the neural rankers' inputs take their roles
and table sizes from the feature workflow's output schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import RankerSpec
from pipeline.errors import ConfigError, DataError
from pipeline.rankers.card import write_ranker_card
from pipeline.rankers.neural.inputs import RankerInputs
from pipeline.rankers.neural.ranker import NeuralRanker
from pipeline.rankers.neural_train import neural_config
from pipeline.rankers.ranker import load_scorer
from pipeline.rankers.xgb import load_warm_start, predict, save_ranker

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FEATURES = ["pop_rank_log", "item_id", "age", "genre", "TE_item_id_relevant"]
SCHEMA = {
    "item_id": {"tags": ["categorical"], "cardinality": 40},
    "genre": {"tags": ["categorical"], "cardinality": 6},
    "age": {"tags": ["continuous"], "cardinality": None},
    "TE_item_id_relevant": {"tags": ["continuous", "target_encoding"], "cardinality": None},
    "relevant": {"tags": ["target"], "cardinality": None},
}


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


def test_inputs_take_roles_and_table_sizes_from_the_schema() -> None:
    inputs = RankerInputs.from_schema(SCHEMA, FEATURES)
    assert inputs.categorical == ("item_id", "genre") and inputs.cardinalities == (40, 6)
    assert inputs.continuous == ("pop_rank_log", "age", "TE_item_id_relevant")
    scaled = inputs.with_scaling([1.0, np.nan, 0.0], [2.0, 0.0, np.inf])
    assert scaled.mean == (1.0, 0.0, 0.0) and scaled.scale == (2.0, 1.0, 1.0)
    codes, floats = scaled.arrays(pd.DataFrame({
        "item_id": np.float32([3, 39]), "genre": np.int64([0, 5]), "age": [1.0, np.nan],
        "pop_rank_log": [5.0, np.nan], "TE_item_id_relevant": [0.5, 0.25]}))
    assert codes.dtype == np.int64 and codes.tolist() == [[3, 0], [39, 5]]
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats, [[2.0, 1.0, 0.5], [0.0, 0.0, 0.25]])  # NaN -> mean


def test_inputs_refuse_what_no_embedding_table_can_hold() -> None:
    with pytest.raises(ConfigError, match="'tagged_cat' is tagged categorical but .* no "
                                          "cardinality"):
        RankerInputs.from_schema({"tagged_cat": {"tags": ["categorical"]}}, ["tagged_cat"])
    with pytest.raises(ConfigError, match="at least one categorical feature"):
        RankerInputs.from_schema(SCHEMA, ["age", "pop_rank_log"])
    inputs = RankerInputs.from_schema(SCHEMA, FEATURES)
    rows = training_rows(10).assign(item_id=np.float32(40))
    with pytest.raises(DataError, match="'item_id' holds 40, not a code of its 40-row"):
        inputs.arrays(rows)


def test_neural_scorer_gives_the_rankers_own_predictions(tmp_path: Path) -> None:
    rows = training_rows()
    inputs = RankerInputs.from_schema(SCHEMA, FEATURES)
    conts = list(inputs.continuous)
    inputs = inputs.with_scaling(rows[conts].mean(), rows[conts].std())
    spec = RankerSpec(model="dcn", neural={"epochs": 2, "batch_size": 256, "embedding_dim": 4,
                                           "deep_mlp": [16], "learning_rate": 0.01})
    inputs.loader_frame(rows).to_parquet(tmp_path / "rows.parquet", row_group_size=1_000)
    ranker = NeuralRanker(neural_config(inputs, spec), device="cpu").fit(tmp_path / "rows.parquet")
    model = tmp_path / "model"
    ranker.save(model)
    write_ranker_card(model, {"kind": "neural", "model": "dcn", "features": FEATURES,
                              "score_batch_size": 700})  # several batches, a short last one
    expected, labels = NeuralRanker.load(model, device="cpu").predict_parquet(
        tmp_path / "rows.parquet")
    np.testing.assert_array_equal(labels, rows["label"].to_numpy())

    scorer = load_scorer(model)
    assert scorer.kind == "neural" and scorer is load_scorer(model)  # cached per process
    assert scorer.features == ["item_id", "genre", *conts]
    # at serving time the workflow's codes are int64, not the training rows' float32
    serving = rows.astype({"item_id": np.int64, "genre": np.int64})
    scores = scorer.score(serving)
    assert scores.dtype == np.float32 and len(scores) == len(rows)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-7)
    assert scorer.score(serving.iloc[:0]).shape == (0,)
    assert np.corrcoef(scores, rows["item_id"] % 3 == 0)[0, 1] > 0.2  # it learnt something


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


def test_xgboost_warm_start_refuses_a_neural_model(tmp_path: Path) -> None:
    write_ranker_card(tmp_path, {"kind": "neural", "features": FEATURES})
    with pytest.raises(DataError, match="is a neural ranker, not an XGBoost one"):
        load_warm_start(tmp_path, FEATURES, "binary:logistic")
