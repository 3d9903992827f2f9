"""DLRM and DCN-v2 trained with the loader: they learn a synthetic click log, checkpoints round
trip without pickle, warm start refuses other features, and data-parallel training on two Dask
workers ends with bit-identical replicas."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scipy.stats import rankdata

from pipeline.errors import ConfigError, DataError
from pipeline.rankers.checkpoint import load_checkpoint, warm_start_state
from pipeline.rankers.loader import LoaderColumns
from pipeline.rankers.neural import NeuralConfig, build_model
from pipeline.rankers.neural.ranker import NeuralRanker
from pipeline.rankers.synthetic_clicks import write_click_log
from pipeline.rankers.torch_ddp import train_on_dask, weights_digest


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    ranks = rankdata(scores)
    pos = labels == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clicks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("clicks")
    schema = write_click_log(root / "train", 24_000, files=2, row_group_size=4_000, seed=0)
    write_click_log(root / "test", 6_000, files=1, row_group_size=3_000, seed=1)
    return root / "train", root / "test", schema


def config_for(schema: dict, **params) -> NeuralConfig:
    params = {"batch_size": 512, "epochs": 2, "learning_rate": 3e-3, **params}
    return NeuralConfig.from_columns(LoaderColumns.from_schema(schema), **params)


@pytest.mark.parametrize("kind", ["dlrm", "dcn"])
def test_rankers_learn_the_click_log_and_round_trip(clicks, tmp_path: Path, kind: str) -> None:
    train, test, schema = clicks
    ranker = NeuralRanker(config_for(schema, model=kind), device="cpu").fit(train)
    scores, labels = ranker.predict_parquet(test)
    assert len(scores) == 6_000
    assert ranker.history_[1] < ranker.history_[0]
    assert auc(labels, scores) > 0.68  # the logistic truth reaches ~0.80; chance is 0.5
    ranker.save(tmp_path / "ckpt")
    card = json.loads((tmp_path / "ckpt" / "model.json").read_text())
    assert card["features"]["categorical"] == {"cat_0": 50, "cat_1": 200, "cat_2": 30,
                                               "cat_3": 1000}
    with np.load(tmp_path / "ckpt" / "weights.npz", allow_pickle=False) as npz:
        assert set(npz.files) == set(ranker.model_.state_dict())
    again, again_labels = NeuralRanker.load(tmp_path / "ckpt", device="cpu").predict_parquet(test)
    np.testing.assert_array_equal(again, scores)
    np.testing.assert_array_equal(again_labels, labels)


def test_warm_start_continues_from_the_checkpoint_and_refuses_other_features(
    clicks, tmp_path: Path
) -> None:
    train, _, schema = clicks
    config = config_for(schema, model="dlrm", epochs=1)
    first = NeuralRanker(config, device="cpu").fit(train)
    first.save(tmp_path / "night1")
    _, saved = load_checkpoint(tmp_path / "night1")
    warm = NeuralRanker(config, device="cpu").new_model(tmp_path / "night1")
    for name, tensor in warm.state_dict().items():
        assert torch.equal(tensor, saved[name])
    second = NeuralRanker(config, device="cpu").fit(train, warm_start=tmp_path / "night1")
    assert second.history_[0] < first.history_[0]  # starts where night 1 ended
    grown = replace(config, cardinalities=(50, 250, 30, 1000))
    with pytest.raises(ConfigError, match=r"categorical 'cat_1': checkpoint 200, today 250"):
        warm_start_state(tmp_path / "night1", grown)
    fewer = replace(config, continuous=("num_0",))
    with pytest.raises(ConfigError, match="continuous: checkpoint"):
        NeuralRanker(fewer, device="cpu").fit(train, warm_start=tmp_path / "night1")
    with pytest.raises(DataError, match="no neural ranker checkpoint"):
        warm_start_state(tmp_path / "nowhere", config)


def test_labels_a_binary_objective_cannot_take_are_refused(tmp_path: Path) -> None:
    n = 1_000
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"u": rng.integers(2, 10, n), "x": rng.random(n, np.float32),
                             "rating": rng.integers(1, 6, n).astype(np.int8)}),
                   tmp_path / "p.parquet")
    config = NeuralConfig(("u",), (10,), ("x",), "rating", batch_size=100)
    with pytest.raises(DataError, match=r"label column 'rating' holds values in \[1, 5\]"):
        NeuralRanker(config, device="cpu").fit(tmp_path / "p.parquet")


def test_data_parallel_replicas_end_identical(dask_client, clicks, tmp_path: Path) -> None:
    train, test, schema = clicks
    config = config_for(schema, model="dcn", batch_size=1024, epochs=2, seed=3)
    init = weights_digest({k: v.numpy() for k, v in build_model(config).state_dict().items()})
    ranker, results = train_on_dask(dask_client, config, train)
    assert len(results) == 2 and {r.rank for r in results} == {0, 1}
    assert len({r.worker for r in results}) == 2  # one rank per worker
    assert results[0].digest == results[1].digest != init
    assert results[0].batches == results[1].batches == 2 * 12  # 12,000 rows a rank, 1,024 a batch
    assert results[0].history != results[1].history  # each rank saw its own rows
    scores, labels = ranker.predict_parquet(test)
    assert auc(labels, scores) > 0.65
    ranker.save(tmp_path / "ddp")
    other = replace(config, continuous=("num_0", "num_1"))
    with pytest.raises(ConfigError, match="features differ"):  # raised on every rank alike
        train_on_dask(dask_client, other, train, warm_start=tmp_path / "ddp")
