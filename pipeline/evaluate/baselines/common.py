"""Shared by the item-scoring baselines: a user x item history matrix per partition of users,
a model that turns it into scores, and the top k per user, with no per-row Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from distributed import get_client

from pipeline.candidates.retrieve import target_users
from pipeline.io import ITEM, TIME, USER

LIST_COLUMNS = [USER, "rank", ITEM, "score"]
USER_CHUNK = 2048  # users scored at once: bounds the dense score block to chunk x catalogue


@dataclass(frozen=True)
class ItemScorer:
    """Scores every catalogue item for a block of users from their history matrix ``X``.

    ``kind``: ``"vector"`` (the same scores for everyone: ``weights`` has shape (n_items,)),
    ``"sparse"`` or ``"dense"`` (``X @ weights``, an item x item matrix).
    """

    name: str
    catalogue: np.ndarray
    kind: str
    weights: Any

    def scores(self, x: sp.csr_matrix) -> np.ndarray:
        if self.kind == "vector":
            return np.broadcast_to(np.asarray(self.weights, dtype=np.float32),
                                   (x.shape[0], len(self.catalogue))).copy()
        product = x @ self.weights
        return np.asarray(product.toarray() if sp.issparse(product) else product,
                          dtype=np.float32)


def history_matrix(history: pd.DataFrame, users: np.ndarray,
                   catalogue: pd.Index) -> sp.csr_matrix:
    """Binary user x item matrix (rows in ``users`` order); items outside the catalogue drop."""
    rows = pd.Index(users).get_indexer(history[USER])
    cols = catalogue.get_indexer(history[ITEM])
    keep = (rows >= 0) & (cols >= 0)
    x = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
                      shape=(len(users), len(catalogue)))
    x.data[:] = 1.0  # duplicates summed by the constructor: back to binary
    return x


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the best ``k`` finite scores per row, best first (ties: lower index),
    and how many of them each row has."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.empty((scores.shape[0], 0), dtype=np.int64), np.zeros(scores.shape[0], int)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    best = np.take_along_axis(part, order, axis=1)
    valid = np.isfinite(np.take_along_axis(scores, best, axis=1))
    return best, valid


def score_partition(events: pd.DataFrame, scorer: ItemScorer, cutoff: int,
                    window_end: int | None, k: int, exclude_seen: bool) -> pd.DataFrame:
    """Lists ``(user_id, rank, item_id, score)`` for one partition of users."""
    history = events[events[TIME] < cutoff]
    users = target_users(events, cutoff, window_end)
    catalogue = pd.Index(scorer.catalogue)
    out = []
    for start in range(0, len(users), USER_CHUNK):
        block = users[start:start + USER_CHUNK]
        x = history_matrix(history, block, catalogue)
        scores = scorer.scores(x)
        if exclude_seen:
            r, c = x.nonzero()
            scores[r, c] = -np.inf
        best, valid = top_k_rows(scores, k)
        ranks = np.broadcast_to(np.arange(1, best.shape[1] + 1), best.shape)
        user_ids = np.broadcast_to(block[:, None], best.shape)
        out.append(pd.DataFrame({
            USER: user_ids[valid], "rank": ranks[valid].astype(np.int64),
            ITEM: scorer.catalogue[best[valid]],
            "score": np.take_along_axis(scores, best, axis=1)[valid].astype(np.float32),
        }))
    if not out:
        return pd.DataFrame({USER: events[USER].iloc[:0].to_numpy(),
                             "rank": np.empty(0, np.int64),
                             ITEM: np.empty(0, dtype=scorer.catalogue.dtype),
                             "score": np.empty(0, np.float32)})
    return pd.concat(out, ignore_index=True)


def score_lists(events: dd.DataFrame, scorer: ItemScorer, cutoff: int, window_end: int | None,
                k: int, exclude_seen: bool) -> dd.DataFrame:
    """Top-k lists for every partition of the user-partitioned log; the scorer (an item x item
    matrix, megabytes) is scattered once to every worker rather than embedded in each task."""
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in events.dtypes.items()})
    meta = score_partition(empty, scorer, cutoff, window_end, k, exclude_seen)
    shared = get_client().scatter(scorer, broadcast=True, hash=False)
    return events.map_partitions(score_partition, shared, cutoff, window_end, k, exclude_seen,
                                 meta=meta, align_dataframes=False)
