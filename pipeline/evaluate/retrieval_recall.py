"""Retrieval recall on the temporal holdout: which share of a user's future items each
candidate generator (and their merged, filtered set) proposes. Recall of the candidates caps
what any ranker can reach, so it tells whether to tune the generators or the model."""

from __future__ import annotations

from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.candidates.context import NightContext
from pipeline.candidates.filters import pairs_isin
from pipeline.candidates.generators import (
    SOURCE_COOCCURRENCE,
    SOURCE_EMBEDDING,
    SOURCE_POPULARITY,
    SOURCE_REPEAT,
)
from pipeline.candidates.retrieve import filter_candidates, retrieve, target_users
from pipeline.io import ITEM, TIME, USER
from pipeline.rows.build import map_user_partitions

GENERATORS = (SOURCE_POPULARITY, SOURCE_COOCCURRENCE, SOURCE_REPEAT, SOURCE_EMBEDDING)
MERGED = "merged"


def recall_partition(events: pd.DataFrame, ctx: NightContext, window_end: int) -> pd.DataFrame:
    """One row of sums for this partition: users with holdout items, and per generator and for
    the merged set the summed per-user recall and candidate count (after the seen filter)."""
    users = target_users(events, ctx.cutoff, window_end)
    history = events[(events[TIME] < ctx.cutoff) & events[USER].isin(users)]
    window = events[(events[TIME] >= ctx.cutoff) & (events[TIME] < window_end)]
    truth = window[[USER, ITEM]].drop_duplicates()
    relevant = truth.groupby(USER).size()
    rows, _ = filter_candidates(retrieve(users, history, ctx), history, ctx)
    hit = pairs_isin(rows[USER].to_numpy(), rows[ITEM].to_numpy(), truth)
    out: dict[str, float] = {"users": float(len(relevant))}
    for name in (*GENERATORS, MERGED):
        mine = (np.ones(len(rows), dtype=bool) if name == MERGED
                else rows["source"].str.contains(name, regex=False).to_numpy(dtype=bool))
        hits = rows.loc[mine & hit, USER].value_counts().reindex(relevant.index, fill_value=0)
        out[f"recall.{name}"] = float((hits / relevant).sum()) if len(relevant) else 0.0
        out[f"candidates.{name}"] = float(mine.sum())
    return pd.DataFrame([out])


def retrieval_recall(events: dd.DataFrame, ctx: NightContext, window_end: int) -> dict[str, Any]:
    """Mean recall per generator and for the merged set over users active in
    ``[ctx.cutoff, window_end)``, with the mean candidates each proposed per user."""
    sums = map_user_partitions(events, recall_partition, ctx, window_end).sum().compute()
    users = float(sums["users"])
    spec = ctx.candidates
    sizes = {SOURCE_POPULARITY: spec.popularity.n,
             SOURCE_COOCCURRENCE: spec.cooccurrence and spec.cooccurrence.n,
             SOURCE_REPEAT: spec.repeat and spec.repeat.n,
             SOURCE_EMBEDDING: spec.embedding and spec.embedding.n}
    names = [g for g in GENERATORS if sizes[g]] + [MERGED]

    def mean(key: str) -> float:
        return round(float(sums[key]) / users, 6) if users else 0.0

    return {"users": int(users), "n": {g: sizes[g] for g in names if g != MERGED},
            "recall": {g: mean(f"recall.{g}") for g in names},
            "candidates_per_user": {g: mean(f"candidates.{g}") for g in names}}
