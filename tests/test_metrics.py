"""Holdout metrics computed on Dask equal a plain per-user computation."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.train.metrics import ranking_metrics


def reference(lists: pd.DataFrame, truth: pd.DataFrame, k: int) -> tuple[float, float]:
    ndcgs, recalls = [], []
    for user, rel in truth.groupby("user_id"):
        relevant = set(rel["item_id"])
        ranked = lists[(lists["user_id"] == user) & (lists["rank"] <= k)].sort_values("rank")
        gains = [1 / np.log2(r + 1) for r, i in zip(ranked["rank"], ranked["item_id"], strict=True)
                 if i in relevant]
        ideal = sum(1 / np.log2(r + 1) for r in range(1, min(len(relevant), k) + 1))
        ndcgs.append(sum(gains) / ideal)
        recalls.append(len(gains) / len(relevant))
    return float(np.mean(ndcgs)), float(np.mean(recalls))


def test_metrics_match_a_per_user_reference(dask_client: object) -> None:
    lists = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2, 2, 4],
        "rank": [1, 2, 3, 1, 2, 3, 1],
        "item_id": [10, 11, 12, 10, 13, 14, 10],
    })
    # user 3 has holdout events but no list: counted, scores zero. user 4 has no holdout events.
    truth = pd.DataFrame({"user_id": [1, 1, 2, 3, 1], "item_id": [11, 15, 14, 10, 11]})
    got = ranking_metrics(dd.from_pandas(lists, npartitions=2),
                          dd.from_pandas(truth, npartitions=2), k=2)
    ndcg, recall = reference(lists, truth.drop_duplicates(), k=2)
    assert got["users"] == 3
    assert got["ndcg@2"] == pytest.approx(ndcg)
    assert got["recall@2"] == pytest.approx(recall)
    assert got["recall@2"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert got["items_listed"] == 3  # 10, 11, 13 within rank 2


def test_perfect_lists_score_one(dask_client: object) -> None:
    truth = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 6, 7]})
    lists = pd.DataFrame({"user_id": [1, 1, 2], "rank": [1, 2, 1], "item_id": [6, 5, 7]})
    got = ranking_metrics(dd.from_pandas(lists, npartitions=1),
                          dd.from_pandas(truth, npartitions=1), k=10)
    assert got["ndcg@10"] == pytest.approx(1.0)
    assert got["recall@10"] == pytest.approx(1.0)
