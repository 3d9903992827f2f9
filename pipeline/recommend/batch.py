"""The four stages for one partition of users, and their fan-out over a Dask dataframe.

Every function here takes one pandas partition of the user-partitioned event log (all of a user's
events sit in one partition) plus a small broadcast ``NightContext``; memory is bounded by the
partition, and only small lists or feature rows leave the worker.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import get_client

from pipeline.config import CandidatesSpec
from pipeline.io import ITEM, TIME, USER
from pipeline.recommend.candidates import (
    cooccurrence_candidates,
    merge_candidates,
    popularity_candidates,
)
from pipeline.recommend.filters import drop_seen
from pipeline.recommend.rank_features import (
    SIGNAL_FEATURES,
    add_signals,
    feature_matrix,
    join_side_tables,
)
from pipeline.recommend.topk import fill_short_lists, top_k
from pipeline.train.xgb import load_ranker, predict


@dataclass(frozen=True)
class NightContext:
    """What every partition needs, computed once and broadcast: statistics as of ``cutoff``."""

    cutoff: int
    popular: pd.DataFrame
    neighbours: pd.DataFrame | None
    users: pd.DataFrame | None
    items: pd.DataFrame | None
    workflow_dir: str
    candidates: CandidatesSpec
    exclude_seen: bool
    k: int


@functools.lru_cache(maxsize=4)
def _cached_workflow(path: str, mtime_ns: int) -> Any:
    from pipeline.features import Workflow

    return Workflow.load(path)


def load_feature_workflow(path: str | Path) -> Any:
    """The saved feature workflow, loaded once per process (so once per Dask worker)."""
    manifest = Path(path) / "workflow.json"
    return _cached_workflow(str(path), manifest.stat().st_mtime_ns if manifest.exists() else 0)


def ranker_feature_columns(workflow: Any) -> list[str]:
    """The model's inputs: candidate signals plus every column the feature workflow produces,
    except the user id (a per-user identifier memorises rather than generalises)."""
    produced = [c for c, col in workflow.output_schema.items() if col["ops"] and c != USER]
    return SIGNAL_FEATURES + produced


def _target_users(events: pd.DataFrame, cutoff: int, window_end: int | None) -> np.ndarray:
    if window_end is None:
        users = events[USER]
    else:
        in_window = (events[TIME] >= cutoff) & (events[TIME] < window_end)
        users = events.loc[in_window, USER]
    return np.sort(users.unique())


def candidate_rows(
    events: pd.DataFrame, ctx: NightContext, window_end: int | None, *, rank: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame, np.ndarray]:
    """Stages 1-2 and the rank stage's input.

    Returns ``(rows, features, history, users)``: ``rows`` are the filtered candidates with raw
    ids, ``features`` the same rows (same order) after the feature workflow, whose Categorify
    replaces ids by codes. With ``rank=False`` (popularity baseline) only the popularity
    generator runs and ``features`` is None.
    """
    history = events[events[TIME] < ctx.cutoff]
    users = _target_users(events, ctx.cutoff, window_end)
    history = history[history[USER].isin(users)]
    spec = ctx.candidates
    by_pop = popularity_candidates(users, ctx.popular, spec.popularity.n)
    empty = pd.DataFrame({USER: by_pop[USER].iloc[:0], ITEM: by_pop[ITEM].iloc[:0],
                          "cooc_score": np.float32(), "cooc_rank": np.int64()})
    by_cooc = empty
    if rank and ctx.neighbours is not None and spec.cooccurrence is not None:
        by_cooc = cooccurrence_candidates(history, ctx.neighbours,
                                          spec.cooccurrence.recent_items, spec.cooccurrence.n)
    rows = merge_candidates(by_pop, by_cooc)
    if ctx.exclude_seen:
        rows = drop_seen(rows, history)
    rows = rows.reset_index(drop=True)
    if not rank:
        return rows, None, history, users
    features = add_signals(rows, history, ctx.popular, ctx.cutoff)
    features = join_side_tables(features, ctx.users, ctx.items)
    features = load_feature_workflow(ctx.workflow_dir).transform(features)
    return rows, features, history, users


def training_partition(
    events: pd.DataFrame, ctx: NightContext, window_end: int, features: list[str],
    validation_fraction: float,
) -> pd.DataFrame:
    """Ranker training rows: candidates as of the cutoff, labelled 1 when the user interacted
    with the item in ``[cutoff, window_end)``; ``is_valid`` holds out a stable share of users."""
    rows, encoded, _, _ = candidate_rows(events, ctx, window_end)
    window = events[(events[TIME] >= ctx.cutoff) & (events[TIME] < window_end)]
    positives = window[[USER, ITEM]].drop_duplicates().assign(label=np.float32(1.0))
    labelled = rows[[USER, ITEM]].merge(positives, on=[USER, ITEM], how="left")
    out = encoded[features].astype(np.float32).reset_index(drop=True)
    out["label"] = labelled["label"].fillna(0.0).to_numpy(dtype=np.float32)
    bucket = user_bucket(rows[USER])
    out["is_valid"] = bucket < validation_fraction
    # Query id for ranking objectives: one group per (user, window); rows sorted by it, as
    # XGBoost requires, and no group spans two partitions since a user lives in one.
    out["qid"] = (bucket * 2**25).astype(np.int64) * 64 + (ctx.cutoff // 86_400) % 64  # < 2^31
    return out.sort_values("qid", kind="stable").reset_index(drop=True)


def user_bucket(users: pd.Series) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per user id (same on every worker and run)."""
    hashed = pd.util.hash_array(users.astype("str").to_numpy(dtype=object))
    return (hashed % np.uint64(1_000_003)).astype(np.float64) / 1_000_003


def recommend_partition(
    events: pd.DataFrame, ctx: NightContext, model_dir: str | None, window_end: int | None
) -> pd.DataFrame:
    """Stages 1-4 for one partition: lists of ``(user_id, rank, item_id, score, source)``.

    ``model_dir=None`` ranks by popularity alone (the baseline); ``window_end`` restricts the
    users to those active in ``[cutoff, window_end)`` (evaluation).
    """
    if model_dir is None:
        rows, _, history, users = candidate_rows(events, ctx, window_end, rank=False)
        scored = rows.assign(score=(1.0 / rows["pop_rank"]).astype(np.float32))
    else:
        rows, encoded, history, users = candidate_rows(events, ctx, window_end)
        booster, features = load_ranker(model_dir)
        scored = rows[[USER, ITEM, "source"]].assign(
            score=predict(booster, feature_matrix(encoded, features))
        )
    lists = top_k(scored, ctx.k)
    return fill_short_lists(lists, users, ctx.popular, history, ctx.k)


def map_user_partitions(
    events: dd.DataFrame, fn: Callable[..., pd.DataFrame], *args: Any
) -> dd.DataFrame:
    """Apply ``fn(partition, *args)`` to every partition; its output schema comes from running
    it on an empty partition locally. A ``NightContext`` is scattered to the cluster once rather
    than embedded in the task graph (its neighbour table can be megabytes)."""
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in events.dtypes.items()})
    meta = fn(empty, *args)
    client = get_client()
    shared = [client.scatter(a, hash=False) if isinstance(a, NightContext) else a for a in args]
    return events.map_partitions(fn, *shared, meta=meta, align_dataframes=False)
