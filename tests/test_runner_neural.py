"""A nightly run with ``ranker.model: dcn`` on the small synthetic log: real Dask (data-parallel
training over both workers), real Parquet, real Redis. The model folder holds a checkpoint and a
ranker card, recommend and evaluate score with it, and a warm start that would load weights
trained on other features is refused."""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_workflow
from pipeline.errors import ConfigError
from pipeline.runner import NightlyRun
from tests.helpers import workflow_file, write_synthetic_log

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"model": "dcn", "neural": {"epochs": 2, "batch_size": 256, "embedding_dim": 4,
                                   "cross_layers": 1, "deep_mlp": [16],
                                   "learning_rate": 0.01}}
# The ranker's lists are published whatever the baselines score: these nights test the neural
# ranker end to end.
FAST_EVALUATION = {"k": 10, "seeds": 2, "baselines": ["popularity"], "publish_best": False}
BARE_EVALUATION = {"k": 10, "seeds": 1, "baselines": []}  # nights 2 and 3 test the train stage


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory, dask_client: Any,
           redis_url: str) -> dict[str, Any]:
    """Night 1 trains from scratch; night 2 warm-starts from it with the same features."""
    root = tmp_path_factory.mktemp("neural")
    data = write_synthetic_log(root / "data")
    name = f"neural-{uuid.uuid4().hex[:6]}"

    def night(date: str, evaluation: dict[str, Any], **ranker: Any) -> Any:
        path = workflow_file(root / f"{date}.yaml", data, root / "runs", name,
                             ranker={**TINY, **ranker}, evaluation=evaluation)
        return NightlyRun(load_workflow(path), date, dask_client, redis_url).run()

    first = night("2026-02-01", FAST_EVALUATION)
    second = night("2026-02-02", BARE_EVALUATION, warm_start=True)
    return {"root": root, "data": data, "name": name, "first": first, "second": second,
            "client": dask_client, "redis_url": redis_url}


def test_the_dcn_night_trains_validates_and_saves_a_checkpoint(nights: dict[str, Any]) -> None:
    manifest = nights["first"]
    assert manifest.data["status"] == "done"
    train = manifest.stage("train")
    assert train["ranker"] == "dcn" and train["metric"] == "logloss"
    assert train["model"] == str(manifest.run_dir / "model")
    assert train["ranks"] == 2  # one data-parallel rank per Dask worker
    assert train["train_rows"] > 0 and train["valid_rows"] > 0
    assert train["best_score"] > 0 and 0.0 <= train["valid_auc"] <= 1.0
    assert len(train["train_logloss"]) == 2
    model = manifest.run_dir / "model"
    assert sorted(p.name for p in model.iterdir()) == ["model.json", "ranker.json",
                                                       "weights.npz"]
    card = json.loads((model / "ranker.json").read_text())
    assert card["kind"] == "neural" and card["model"] == "dcn"
    assert card["features"] == train["features"]
    schema = manifest.stage("features")["output_schema"]
    assert card["categorical"] == {c: schema[c]["cardinality"] for c in ("item_id", "gender",
                                                                         "genre")}
    assert "user_id" not in card["categorical"] and "age" in card["continuous"]
    assert not (manifest.run_dir / "model-loader-rows").exists()  # the loader's copy is gone


def test_recommend_and_evaluate_score_with_the_neural_ranker(nights: dict[str, Any]) -> None:
    manifest = nights["first"]
    lists = pd.read_parquet(manifest.run_dir / "recommendations")
    events = pd.read_parquet(manifest.run_dir / "events")
    assert lists["user_id"].nunique() == events["user_id"].nunique()
    sizes = lists.groupby("user_id")["item_id"].agg(["size", "nunique"])
    assert (sizes["size"] == 10).all() and (sizes["nunique"] == 10).all()
    ranked = lists[lists["source"] != "fallback"]["score"].to_numpy()
    assert len(ranked) and ((ranked > 0) & (ranked < 1)).all()  # click probabilities
    evaluation = manifest.stage("evaluate")
    assert evaluation["metrics"]["ranker"]["runs"] == 2
    assert evaluation["choice"]["published"] == "ranker" and not evaluation["choice"]["enabled"]
    seed = manifest.run_dir / "evaluation" / "ranker-seed-1"
    assert json.loads((seed / "ranker.json").read_text())["seed"] == 1
    assert manifest.stage("publish")["users"] == lists["user_id"].nunique()


def test_warm_start_continues_from_last_nights_checkpoint(nights: dict[str, Any]) -> None:
    first, second = nights["first"], nights["second"]
    card = json.loads((second.run_dir / "model" / "ranker.json").read_text())
    assert card["warm_start"] == str(first.run_dir / "model")
    # the night-1 scaling is kept, so the warm weights see the inputs they were trained on
    config = json.loads((second.run_dir / "model" / "model.json").read_text())["config"]
    before = json.loads((first.run_dir / "model" / "model.json").read_text())["config"]
    assert config["extra"]["scaling"] == before["extra"]["scaling"]
    assert np.isfinite(second.stage("train")["train_logloss"]).all()


def test_warm_start_from_other_features_is_refused(nights: dict[str, Any]) -> None:
    path = workflow_file(
        nights["root"] / "fewer.yaml", nights["data"], nights["root"] / "runs", nights["name"],
        ranker={**TINY, "warm_start": True}, evaluation=BARE_EVALUATION,
        features=[{"op": "categorify", "columns": ["user_id", "item_id", "gender", "genre"]},
                  {"op": "normalize", "columns": ["age"]}])  # no target encoding tonight
    run = NightlyRun(load_workflow(path), "2026-02-03", nights["client"], nights["redis_url"])
    with pytest.raises(ConfigError, match=r"cannot warm start from .*2026-02-02/model: its "
                                          r"features differ .*continuous: checkpoint"):
        run.run()
    assert run.manifest.stage("train")["status"] == "failed"
