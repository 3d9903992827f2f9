"""One synthetic night through the runner with every business rule, the repeat and embedding
generators and the reorder stage switched on: expect the rules to hold in the published lists
and their counts in the manifest."""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
import pytest

from pipeline.config import load_workflow
from pipeline.runner import NightlyRun
from tests.helpers import workflow_file, write_synthetic_log

DATE = "2026-02-01"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory, dask_client: Any,
          redis_url: str) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("rules")
    data = write_synthetic_log(root / "data")
    items = pd.read_parquet(data / "items")
    blocked = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [1, 2, 3, 4]})
    blocked.to_parquet(root / "block.parquet")
    gone = [5, 6, 7]
    avail = items.loc[~items["item_id"].isin(gone), ["item_id"]].assign(date=DATE)
    pd.concat([avail, pd.DataFrame({"item_id": gone, "date": "2026-01-31"})]
              ).to_parquet(root / "avail.parquet")
    name = f"rules-{uuid.uuid4().hex[:6]}"
    path = workflow_file(
        root / "w.yaml", data, root / "runs", name,
        candidates={"popularity": {"n": 30}, "cooccurrence": {"n": 30}, "repeat": {"n": 10},
                    "embedding": {"n": 15, "dim": 8, "epochs": 5}},
        filter={"exclude_seen": True, "seen_window_days": 20,
                "exclude_items_where": [{"column": "genre", "equals": "a"}],
                "blocklist": str(root / "block.parquet"),
                "availability": str(root / "avail.parquet"),
                "max_per_category": {"column": "genre", "m": 4}},
        reorder={"diversity": {"method": "mmr", "column": "genre", "lambda": 0.6},
                 "boosts": [{"column": "genre", "equals": "c", "factor": 1.2}]},
        evaluation={"k": 5, "baselines": ["popularity"]},
    )
    spec = load_workflow(path)
    manifest = NightlyRun(spec, DATE, dask_client, redis_url).run()
    lists = pd.read_parquet(manifest.run_dir / "recommendations")
    return {"spec": spec, "manifest": manifest, "lists": lists, "items": items,
            "blocked": blocked, "gone": gone}


def test_rules_hold_in_every_list(night: dict[str, Any]) -> None:
    lists, items = night["lists"], night["items"]
    genre = lists.merge(items, on="item_id", how="left")["genre"]
    assert not (genre == "a").any()
    assert not lists["item_id"].isin(night["gone"]).any()
    assert lists.merge(night["blocked"], on=["user_id", "item_id"]).empty
    capped = lists.assign(genre=genre.to_numpy()).dropna(subset=["genre"])
    assert capped.groupby(["user_id", "genre"]).size().max() <= 4


def test_every_user_gets_a_full_list_and_counts_reach_the_manifest(
        night: dict[str, Any]) -> None:
    stage = night["manifest"].stage("recommend")
    k = night["spec"].recommend.k
    sizes = night["lists"].groupby("user_id").size()
    assert (sizes == k).all() and stage["users"] == len(sizes)
    assert stage["full_list_share"] == 1.0
    removed = stage["filter_removed"]
    assert set(removed) == {"seen", "exclude_items_where[0]:genre", "unavailable", "blocklist",
                            "max_per_category"}
    assert all(v > 0 for k_, v in removed.items() if k_ != "blocklist")
    assert set(stage["stage_seconds"]) == {"retrieve", "filter", "rank", "reorder"}
    assert night["lists"]["source"].str.contains("repeat").any()



def test_holdout_retrieval_recall_per_generator_is_recorded(night: dict[str, Any]) -> None:
    retrieval = night["manifest"].stage("evaluate")["retrieval"]
    recall = retrieval["recall"]
    assert set(recall) == {"popularity", "cooccurrence", "repeat", "ease", "embedding",
                           "merged"}
    assert retrieval["users"] > 0 and 0 < recall["merged"] <= 1
    assert recall["merged"] >= max(v for k, v in recall.items() if k != "merged")
    assert retrieval["n"] == {"popularity": 30, "cooccurrence": 30, "repeat": 10, "ease": 100,
                              "embedding": 15}
    assert 0 < retrieval["candidates_per_user"]["embedding"] <= 15


def test_embedding_generator_feeds_lists_and_ranker(night: dict[str, Any]) -> None:
    """One retrieval model per cutoff (label windows, holdout, tonight's lists), its candidates
    in the lists, and its signals among the ranker's features."""
    run_dir = night["manifest"].run_dir
    models = sorted((run_dir / "retrieval").glob("cutoff-*/retrieval.json"))
    split = night["manifest"].stage("prepare")["split"]
    assert len(models) == len(split["label_starts"]) + 2
    assert night["lists"]["source"].str.contains("embedding").any()
    features = night["manifest"].stage("train")["features"]
    assert {"emb_score", "emb_rank_log"} <= set(features)
