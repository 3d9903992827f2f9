"""Ranker input rows for one partition of users: filtered candidates joined with their signals
and side tables, passed through the saved feature workflow; labelled from a window for training.
``map_user_partitions`` fans any such function out over the user-partitioned log.

Every function here takes one pandas partition of the user-partitioned event log (all of a user's
events sit in one partition) plus a small broadcast ``NightContext``; memory is bounded by the
partition, and only small lists or feature rows leave the worker.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import get_client

from pipeline.candidates.context import NightContext
from pipeline.candidates.retrieve import filter_candidates, retrieve, target_users
from pipeline.config import CandidatesSpec
from pipeline.io import ITEM, TIME, USER
from pipeline.rows.signals import (
    EMBEDDING_SIGNALS,
    SIGNAL_FEATURES,
    add_signals,
    join_side_tables,
)

Stats = dict[str, float]


@contextmanager
def timed(stats: Stats | None, stage: str) -> Iterator[None]:
    """Add the block's wall seconds to ``stats['seconds.<stage>']`` (summed over partitions)."""
    started = time.perf_counter()
    yield
    if stats is not None:
        key = f"seconds.{stage}"
        stats[key] = stats.get(key, 0.0) + time.perf_counter() - started


def count_removed(stats: Stats | None, removed: dict[str, int]) -> None:
    if stats is not None:
        for rule, n in removed.items():
            stats[f"removed.{rule}"] = stats.get(f"removed.{rule}", 0) + n


@functools.lru_cache(maxsize=4)
def _cached_workflow(path: str, mtime_ns: int) -> Any:
    from pipeline.features import Workflow

    return Workflow.load(path)


def load_feature_workflow(path: str | Path) -> Any:
    """The saved feature workflow, loaded once per process (so once per Dask worker)."""
    manifest = Path(path) / "workflow.json"
    return _cached_workflow(str(path), manifest.stat().st_mtime_ns if manifest.exists() else 0)


def ranker_feature_columns(workflow: Any, candidates: CandidatesSpec | None = None) -> list[str]:
    """The model's inputs: candidate signals (plus the embedding ones when that generator is
    on) and every column the feature workflow produces, except the user id (a per-user
    identifier memorises rather than generalises)."""
    produced = [c for c, col in workflow.output_schema.items() if col["ops"] and c != USER]
    signals = SIGNAL_FEATURES + (EMBEDDING_SIGNALS if candidates and candidates.embedding else [])
    return signals + produced


def candidate_rows(
    events: pd.DataFrame, ctx: NightContext, window_end: int | None, *, rank: bool = True,
    stats: Stats | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame, np.ndarray]:
    """Stages 1-2 and the rank stage's input.

    Returns ``(rows, features, history, users)``: ``rows`` are the filtered candidates with raw
    ids, ``features`` the same rows (same order) after the feature workflow, whose Categorify
    replaces ids by codes. With ``rank=False`` (popularity baseline) only the popularity
    generator runs and ``features`` is None. ``stats`` (when given) collects the rows each
    filter rule removed (``removed.<rule>``) and seconds per stage (``seconds.<stage>``).
    """
    history = events[events[TIME] < ctx.cutoff]
    users = target_users(events, ctx.cutoff, window_end)
    history = history[history[USER].isin(users)]
    with timed(stats, "retrieve"):
        rows = retrieve(users, history, ctx, rank)
    with timed(stats, "filter"):
        retrieved = len(rows)
        rows, removed = filter_candidates(rows, history, ctx)
    count_removed(stats, removed)
    if stats is not None:
        stats["candidates.retrieved"] = stats.get("candidates.retrieved", 0) + retrieved
        stats["candidates.ranked"] = stats.get("candidates.ranked", 0) + len(rows)
    if not rank:
        return rows, None, history, users
    with timed(stats, "rank"):
        features = add_signals(rows, history, ctx.popular, ctx.cutoff, ctx.embedding_index())
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
