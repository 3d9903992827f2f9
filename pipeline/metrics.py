"""Holdout metrics computed with Dask: per-user (or per-score) sums on the workers, only a handful
of totals reach the client.

Lists (``user_id, rank, item_id``) against a holdout ``truth`` (``user_id, item_id``):

- NDCG@k: binary relevance, ideal DCG of ``min(|relevant|, k)`` hits.
- Recall@k: hits / |relevant|.
- MAP@k: mean over users of AP@k = sum of precision@r at each hit rank r, / ``min(|relevant|, k)``.
- coverage@k: distinct items listed in the top k / catalogue size (when the size is given).

Users with no holdout event are not evaluated; an evaluated user with no list scores zero.

Click rankers (``label`` in {0, 1}, ``score``): exact AUC with ties counted half (a distributed
sort of the distinct scores and a running count), and log-loss of probabilities.
"""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.io import ITEM, USER

LOGLOSS_EPS = 1e-7


def _ideal_dcg(n_relevant: np.ndarray, k: int) -> np.ndarray:
    gains = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    return gains[np.minimum(n_relevant, k)]


MAX_MASK_K = 62  # hit ranks fit one int64 bitmask per user up to this k


def _per_user_hits(hits: pd.DataFrame) -> pd.DataFrame:
    """DCG, hit count and summed precision-at-hit per user (all of a user's hits are in this
    partition)."""
    hits = hits.sort_values([USER, "rank"], kind="stable")
    order = hits.groupby(USER, sort=False).cumcount().to_numpy() + 1
    ranks = hits["rank"].to_numpy(dtype=np.float64)
    frame = pd.DataFrame({
        USER: hits[USER].to_numpy(),
        "dcg": 1.0 / np.log2(ranks + 1.0),
        "hits": np.ones(len(hits)),
        "precision": order / ranks,
    })
    return frame.groupby(USER).sum()


def _from_masks(masks: pd.Series, k: int) -> pd.DataFrame:
    """The same per-user sums from each user's bitmask of hit ranks (bit r-1 set: a hit at r)."""
    bits = (masks.to_numpy(dtype=np.int64)[:, None] >> np.arange(k)) & 1
    ranks = np.arange(1, k + 1, dtype=np.float64)
    return pd.DataFrame({
        "dcg": bits @ (1.0 / np.log2(ranks + 1.0)),
        "hits": bits.sum(axis=1).astype(np.float64),
        "precision": (bits * np.cumsum(bits, axis=1) / ranks).sum(axis=1),
    }, index=masks.index)


def _hit_sums(hits: dd.DataFrame, k: int, user_dtype: object) -> dd.DataFrame:
    meta = pd.DataFrame({c: pd.Series(dtype="f8") for c in ("dcg", "hits", "precision")},
                        index=pd.Index([], dtype=user_dtype, name=USER))
    if k <= MAX_MASK_K:
        # A plain groupby-sum (a tree reduction, no shuffle): ranks are distinct per user, so
        # summing 2^(rank-1) sets one bit per hit.
        masks = hits.assign(mask=2 ** (hits["rank"].astype("int64") - 1)).groupby(USER)["mask"]
        return masks.sum().map_partitions(_from_masks, k, meta=meta)
    # Larger k: a user's hits must sit in one partition for the running precision.
    return hits.shuffle(on=USER).map_partitions(_per_user_hits, meta=meta)


def _summarise(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    n_rel = frame["relevant"].to_numpy(dtype=np.int64)
    ndcg = frame["dcg"].to_numpy() / _ideal_dcg(n_rel, k)
    recall = frame["hits"].to_numpy() / n_rel
    ap = frame["precision"].to_numpy() / np.minimum(n_rel, k)
    return pd.DataFrame({"ndcg": [ndcg.sum()], "recall": [recall.sum()], "map": [ap.sum()],
                         "users": [float(len(frame))]})


def ranking_metrics(
    lists: dd.DataFrame, truth: dd.DataFrame, k: int, catalogue_size: int | None = None
) -> dict[str, float]:
    """NDCG@k, Recall@k, MAP@k and catalogue coverage of ``lists`` against ``truth``."""
    truth = truth[[USER, ITEM]].drop_duplicates()
    top = lists[lists["rank"] <= k][[USER, ITEM, "rank"]]
    hits = top.merge(truth, on=[USER, ITEM], how="inner")
    per_user_hits = _hit_sums(hits, k, truth[USER].dtype)
    relevant = truth.groupby(USER).size().rename("relevant").to_frame()
    per_user = relevant.join(per_user_hits, how="left").fillna(0.0)
    sums = per_user.map_partitions(
        _summarise, k, meta={"ndcg": "f8", "recall": "f8", "map": "f8", "users": "f8"}
    ).sum()
    sums, items_listed = dask.compute(sums, top[ITEM].nunique())
    users = float(sums["users"])
    out: dict[str, float] = {f"ndcg@{k}": 0.0, f"recall@{k}": 0.0, f"map@{k}": 0.0,
                             "users": int(users), "items_listed": int(items_listed)}
    if users:
        for name in ("ndcg", "recall", "map"):
            out[f"{name}@{k}"] = float(sums[name]) / users
    if catalogue_size is not None:
        out[f"coverage@{k}"] = int(items_listed) / catalogue_size if catalogue_size else 0.0
    return out


def _logloss_sums(frame: pd.DataFrame, label: str, score: str) -> pd.DataFrame:
    y = frame[label].to_numpy(dtype=np.float64)
    p = np.clip(frame[score].to_numpy(dtype=np.float64), LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
    loss = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return pd.DataFrame({"loss": [loss.sum()], "rows": [float(len(frame))]})


def _rank_sums(frame: pd.DataFrame) -> pd.DataFrame:
    """Positives times their mid-rank, for one sorted partition (``start`` = rows before it)."""
    mid = frame["below"].to_numpy() - (frame["n"].to_numpy() - 1.0) / 2.0
    return pd.DataFrame({"s": [(frame["pos"].to_numpy() * mid).sum()]})


def click_metrics(
    frame: dd.DataFrame, *, label: str = "label", score: str = "score", probabilities: bool = True
) -> dict[str, float]:
    """AUC (and log-loss when ``score`` holds probabilities) of ``score`` against a 0/1 label.

    AUC = (sum of the positives' mid-ranks - P(P+1)/2) / (P N), the Mann-Whitney form: only
    the distinct scores are sorted (distributed), never the rows on the client.
    """
    frame = frame[[label, score]]
    counts = frame.groupby(score).agg(pos=(label, "sum"), n=(label, "size"),
                                      split_out=max(1, frame.npartitions // 4))
    counts = counts.reset_index().sort_values(score)
    counts = counts.assign(below=counts["n"].cumsum().astype("f8"),
                           pos=counts["pos"].astype("f8"), n=counts["n"].astype("f8"))
    rank_sum = counts.map_partitions(_rank_sums, meta={"s": "f8"})["s"].sum()
    todo = [rank_sum, frame[label].sum(), frame.shape[0]]
    if probabilities:
        todo.append(frame.map_partitions(_logloss_sums, label, score,
                                         meta={"loss": "f8", "rows": "f8"}).sum())
    computed = dask.compute(*todo)
    rank_sum, positives, rows = float(computed[0]), float(computed[1]), int(computed[2])
    negatives = rows - positives
    out: dict[str, float] = {"rows": rows, "positives": int(positives)}
    out["auc"] = ((rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
                  if positives and negatives else float("nan"))
    if probabilities:
        out["logloss"] = float(computed[3]["loss"]) / rows if rows else float("nan")
    return out


def block_ndcg(scores: np.ndarray, truth: sp.csr_matrix, k: int) -> float:
    """Mean NDCG@k of the top ``k`` of each row of a dense score block against the binary
    ``truth`` matrix (same shape; rows without a relevant item are skipped). Scores of -inf are
    never listed (excluded items)."""
    relevant = np.diff(truth.indptr)
    rows = np.flatnonzero(relevant > 0)
    if len(rows) == 0:
        return 0.0
    scores, truth = scores[rows], truth[rows]
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(scores, part, axis=1)
    best = np.take_along_axis(part, np.argsort(-picked, axis=1, kind="stable"), axis=1)
    hits = np.asarray(truth[np.arange(len(rows))[:, None], best].todense(), dtype=np.float64)
    hits *= np.isfinite(np.take_along_axis(scores, best, axis=1))
    dcg = hits @ (1.0 / np.log2(np.arange(2, k + 2)))
    return float((dcg / _ideal_dcg(relevant[rows], k)).mean())
