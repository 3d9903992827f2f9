"""Holdout metrics computed on Dask equal hand-computed values and a plain per-user reference."""

from __future__ import annotations

import math

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.metrics import click_metrics, ranking_metrics


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


def test_hand_computed_ndcg_recall_map_and_coverage(dask_client: object) -> None:
    lists = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2, 2, 5, 5, 5],
        "rank": [1, 2, 3, 1, 2, 3, 1, 2, 3],
        "item_id": [10, 11, 12, 10, 13, 14, 20, 21, 22],
    })
    truth = pd.DataFrame({"user_id": [1, 1, 2, 3, 5, 5], "item_id": [11, 15, 14, 10, 20, 22]})
    got = ranking_metrics(dd.from_pandas(lists, npartitions=3),
                          dd.from_pandas(truth, npartitions=2), k=3, catalogue_size=20)
    lg = math.log2
    # user 1: hit at rank 2 of 2 relevant; user 2: hit at rank 3 of 1; user 3: no list;
    # user 5: hits at ranks 1 and 3 of 2 relevant.
    ndcg = [(1 / lg(3)) / (1 + 1 / lg(3)), (1 / lg(4)) / 1, 0.0,
            (1 + 1 / lg(4)) / (1 + 1 / lg(3))]
    recall = [1 / 2, 1.0, 0.0, 1.0]
    ap = [(1 / 2) / 2, (1 / 3) / 1, 0.0, (1 / 1 + 2 / 3) / 2]
    assert got["users"] == 4
    assert got["ndcg@3"] == pytest.approx(sum(ndcg) / 4)
    assert got["recall@3"] == pytest.approx(sum(recall) / 4)
    assert got["map@3"] == pytest.approx(sum(ap) / 4)
    assert got["coverage@3"] == pytest.approx(8 / 20)  # 10..14 minus none, 20..22: 8 items


def test_perfect_lists_score_one(dask_client: object) -> None:
    truth = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 6, 7]})
    lists = pd.DataFrame({"user_id": [1, 1, 2], "rank": [1, 2, 1], "item_id": [6, 5, 7]})
    got = ranking_metrics(dd.from_pandas(lists, npartitions=1),
                          dd.from_pandas(truth, npartitions=1), k=10)
    assert got["ndcg@10"] == pytest.approx(1.0)
    assert got["recall@10"] == pytest.approx(1.0)
    assert got["map@10"] == pytest.approx(1.0)


def test_auc_counts_ties_half_and_logloss_matches_hand_values(dask_client: object) -> None:
    frame = pd.DataFrame({"label": [1, 0, 0, 1, 0, 1],
                          "score": [0.5, 0.5, 0.2, 0.9, 0.1, 0.3]})
    got = click_metrics(dd.from_pandas(frame, npartitions=3))
    # positives {0.5, 0.9, 0.3} vs negatives {0.5, 0.2, 0.1}: 9 pairs, one tie (0.5 vs 0.5),
    # 0.3 loses to 0.5: wins = 2.5 + 3 + 2 = 7.5
    assert got["auc"] == pytest.approx(7.5 / 9)
    expected = -np.mean([math.log(0.5), math.log(0.5), math.log(0.8), math.log(0.9),
                         math.log(0.9), math.log(0.3)])
    assert got["logloss"] == pytest.approx(expected)
    assert got["rows"] == 6 and got["positives"] == 3


def test_auc_equals_the_pairwise_definition_on_random_scores(dask_client: object) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"label": rng.integers(0, 2, 400),
                          "score": rng.integers(0, 50, 400) / 50.0})  # many ties
    got = click_metrics(dd.from_pandas(frame, npartitions=4), probabilities=False)
    pos = frame["score"][frame["label"] == 1].to_numpy()[:, None]
    neg = frame["score"][frame["label"] == 0].to_numpy()[None, :]
    assert got["auc"] == pytest.approx(((pos > neg) + 0.5 * (pos == neg)).mean())
    assert "logloss" not in got


@pytest.mark.parametrize("k", [5, 70])  # the bitmask reduction and the shuffle path (k > 62)
def test_random_lists_match_the_reference_including_map(dask_client: object, k: int) -> None:
    rng = np.random.default_rng(k)
    lists = pd.DataFrame({"user_id": np.repeat(np.arange(30), 80),
                          "rank": np.tile(np.arange(1, 81), 30),
                          "item_id": rng.integers(0, 400, 2400)})
    lists = lists.drop_duplicates(["user_id", "item_id"])
    lists["rank"] = lists.groupby("user_id").cumcount() + 1
    truth = pd.DataFrame({"user_id": rng.integers(0, 35, 900),
                          "item_id": rng.integers(0, 400, 900)}).drop_duplicates()
    got = ranking_metrics(dd.from_pandas(lists, npartitions=3),
                          dd.from_pandas(truth, npartitions=2), k=k)
    ndcg, recall = reference(lists, truth, k)
    aps = []
    for user, rel in truth.groupby("user_id"):
        ranked = lists[(lists["user_id"] == user) & (lists["rank"] <= k)].sort_values("rank")
        hit = ranked["item_id"].isin(set(rel["item_id"])).to_numpy()
        precision = np.cumsum(hit) / np.arange(1, len(hit) + 1)
        aps.append((precision * hit).sum() / min(len(rel), k))
    assert got[f"ndcg@{k}"] == pytest.approx(ndcg)
    assert got[f"recall@{k}"] == pytest.approx(recall)
    assert got[f"map@{k}"] == pytest.approx(float(np.mean(aps)))
