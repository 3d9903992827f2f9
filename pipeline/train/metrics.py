"""List metrics on a temporal holdout, computed with Dask: per-user sums on the workers, only a
handful of totals reach the client.

NDCG@k uses binary relevance (the user interacted with the item in the holdout) and the ideal
DCG of ``min(|relevant|, k)`` hits; Recall@k is hits / |relevant|. Users with no holdout event
are not evaluated; an evaluated user with no list scores zero.
"""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.io import ITEM, USER


def _ideal_dcg(n_relevant: np.ndarray, k: int) -> np.ndarray:
    gains = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    return gains[np.minimum(n_relevant, k)]


def ranking_metrics(lists: dd.DataFrame, truth: dd.DataFrame, k: int) -> dict[str, float]:
    """NDCG@k, Recall@k and catalogue coverage of ``lists`` against ``truth`` (user, item)."""
    truth = truth[[USER, ITEM]].drop_duplicates()
    top = lists[lists["rank"] <= k][[USER, ITEM, "rank"]]
    hits = top.merge(truth, on=[USER, ITEM], how="inner")
    hits = hits.assign(gain=1.0 / np.log2(hits["rank"] + 1.0))
    per_user_hits = hits.groupby(USER).agg(dcg=("gain", "sum"), hits=("gain", "size"))
    relevant = truth.groupby(USER).size().rename("relevant").to_frame()
    per_user = relevant.join(per_user_hits, how="left").fillna(0.0)

    def summarise(frame: pd.DataFrame) -> pd.DataFrame:
        n_rel = frame["relevant"].to_numpy(dtype=np.int64)
        ndcg = frame["dcg"].to_numpy() / _ideal_dcg(n_rel, k)
        recall = frame["hits"].to_numpy() / n_rel
        return pd.DataFrame({"ndcg": [ndcg.sum()], "recall": [recall.sum()],
                             "users": [float(len(frame))]})

    sums = per_user.map_partitions(
        summarise, meta={"ndcg": "f8", "recall": "f8", "users": "f8"}
    ).sum()
    items_listed = top[ITEM].nunique()
    sums, items_listed = dask.compute(sums, items_listed)
    users = float(sums["users"])
    if users == 0:
        return {f"ndcg@{k}": 0.0, f"recall@{k}": 0.0, "users": 0, "items_listed": 0}
    return {
        f"ndcg@{k}": float(sums["ndcg"]) / users,
        f"recall@{k}": float(sums["recall"]) / users,
        "users": int(users),
        "items_listed": int(items_listed),
    }
