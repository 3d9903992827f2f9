"""The evaluate stage: every baseline beside the ranker over several seeds, mean ± std in the
manifest, the verdict against the baselines, and which lists the night publishes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.config import load_workflow
from pipeline.evaluate.night import choose, reseeded, summarise, verdict
from pipeline.report import summary_lines
from pipeline.runner import NightlyRun
from tests.helpers import workflow_file, write_synthetic_log


def result(ndcg: float) -> dict[str, float]:
    return {"users": 10, "ndcg@10": ndcg, "recall@10": ndcg / 2, "map@10": ndcg / 3,
            "coverage@10": 0.5}


def test_summary_is_mean_and_sample_std_and_the_verdict_uses_both() -> None:
    table = summarise({"ranker": [result(0.30), result(0.32), result(0.34)],
                       "popularity": [result(0.25)], "ease": [result(0.31)]}, 10)
    assert table["ranker"]["ndcg@10"] == pytest.approx(0.32)
    assert table["ranker"]["ndcg@10_std"] == pytest.approx(0.02)
    assert table["ranker"]["runs"] == 3 and table["popularity"]["ndcg@10_std"] == 0.0
    got = verdict(table, 10)
    assert got["margins"]["popularity"]["beaten"] is True  # 0.07 > 2 x 0.02
    assert got["margins"]["ease"]["beaten"] is False  # 0.01 < 2 x 0.02
    assert got["beats_every_baseline"] is False and got["best_ranker"] == "ranker"


def test_one_ranker_run_gives_no_verdict() -> None:
    table = summarise({"ranker": [result(0.30)], "popularity": [result(0.25)]}, 10)
    got = verdict(table, 10)
    assert got["margins"]["popularity"]["margin"] == pytest.approx(0.05)
    assert got["margins"]["popularity"]["beaten"] is None
    assert got["beats_every_baseline"] is None


def test_a_baseline_is_published_only_when_it_beats_the_ranker() -> None:
    table = summarise({"ranker": [result(0.30)], "popularity": [result(0.25)],
                       "ease": [result(0.32)]}, 10)
    paired = {"ranker": np.array([0.2, 0.4, 0.3]), "popularity": np.array([0.1, 0.3, 0.35]),
              "ease": np.array([0.3, 0.45, 0.36])}
    got = choose(table, paired, 10, enabled=True)
    assert got["published"] == "ease" and "ease beat the ranker" in got["reason"]
    assert got["baseline_gain_over_ranker"]["ease"]["gain"] == pytest.approx(0.07)
    assert got["baseline_gain_over_ranker"]["ease"]["stderr"] > 0
    assert choose(table, paired, 10, enabled=False)["published"] == "ranker"
    tied = {**paired, "ease": paired["ranker"].copy()}
    assert choose(table, tied, 10, enabled=True)["published"] == "ranker"  # ties: the ranker


def test_a_gain_within_noise_keeps_the_ranker() -> None:
    rng = np.random.default_rng(3)
    ranker = rng.random(80)
    noisy = np.clip(ranker + 0.005 + rng.normal(0.0, 0.2, 80), 0.0, 1.0)  # gain << stderr
    table = summarise({"ranker": [result(float(ranker.mean()))],
                       "popularity": [result(float(noisy.mean()))]}, 10)
    paired = {"ranker": ranker, "popularity": noisy}
    margin = choose(table, paired, 10, enabled=True, stderrs=0.0)
    assert margin["baseline_gain_over_ranker"]["popularity"]["gain"] > 0
    assert margin["published"] == "popularity"  # any positive gain switches at 0 stderrs
    kept = choose(table, paired, 10, enabled=True)
    assert kept["published"] == "ranker" and "more than 1 standard error" in kept["reason"]
    assert kept["stderrs"] == 1.0
    clear = {"ranker": ranker, "popularity": np.clip(ranker + 0.1, 0.0, None)}
    assert choose(table, clear, 10, enabled=True)["published"] == "popularity"


def test_reseeding_moves_whole_users_between_train_and_validation(dask_client: Any) -> None:
    keys = np.random.default_rng(0).random(2000)
    frame = pd.DataFrame({"user_key": np.concatenate([keys, keys]),
                          "user": np.concatenate([np.arange(2000)] * 2), "is_valid": False})
    a = reseeded(dd.from_pandas(frame, npartitions=2), 1, 0.2).compute()
    b = reseeded(dd.from_pandas(frame, npartitions=2), 2, 0.2).compute()
    per_user = a.groupby("user")["is_valid"].nunique()
    assert (per_user == 1).all()  # both windows of a user on the same side
    assert 0.15 < a["is_valid"].mean() < 0.25
    assert (a["is_valid"] != b["is_valid"]).any()  # another seed, another split


@pytest.mark.e2e
def test_a_night_reports_every_model_over_seeds(tmp_path: Path, dask_client: Any,
                                                redis_url: str) -> None:
    data = write_synthetic_log(tmp_path / "data")
    name = f"eval-{uuid.uuid4().hex[:6]}"
    path = workflow_file(tmp_path / "w.yaml", data, tmp_path / "runs", name,
                         evaluation={"k": 10, "seeds": 2, "baselines": [
                             "popularity", "repeat", "itemknn", "ease", "logistic"]})
    manifest = NightlyRun(load_workflow(path), "2026-02-01", dask_client, redis_url).run()
    stage = manifest.stage("evaluate")
    table = stage["metrics"]
    assert set(table) == {"ranker", "popularity", "popularity_global", "repeat", "itemknn",
                          "ease", "logistic"}
    assert manifest.stage("prepare")["exclude_seen"] is False  # the log repeats (user, item)
    assert set(stage["horizons"]) == {"short", "long"} and stage["horizons"]["long"] == table
    assert table["ranker"]["runs"] == 2 and stage["seeds"] == 2
    assert len(stage["per_seed"]["ranker"]) == 2
    for row in table.values():
        assert row["users"] == table["ranker"]["users"] > 0
        for key in ("ndcg@10", "recall@10", "map@10", "coverage@10"):
            assert 0.0 <= row[key] <= 1.0 and row[f"{key}_std"] >= 0.0
    choice = stage["choice"]
    assert choice["published"] in table and choice["reason"]
    assert set(choice["baseline_gain_over_ranker"]) == set(table) - {"ranker"}
    assert manifest.stage("recommend")["source"] == choice["published"]
    recall = stage["retrieval"]["recall"]
    assert {"popularity", "cooccurrence", "ease", "merged"} <= set(recall)
    assert recall["merged"] >= max(v for k, v in recall.items() if k != "merged")
    assert len(manifest.stage("train")["ease"]["tried"]) >= 3
    assert (manifest.run_dir / "evaluation" / "ranker-seed-1" / "model.json").exists()
    assert (manifest.run_dir / "evaluation" / "logistic" / "ranker.json").exists()
    assert "ranker" in "\n".join(summary_lines(manifest))
