"""Ranker input rows for one partition of users: filtered candidates joined with their signals
and side tables, passed through the saved feature workflow; labelled from a window for training.
``map_user_partitions`` fans any such function out over the user-partitioned log.

Every function here takes one pandas partition of the user-partitioned event log (all of a user's
events sit in one partition) plus a small broadcast ``NightContext``, and goes through its users
in chunks (``candidate_chunks``): memory follows the chunk, and only small lists or sampled
feature rows leave the worker.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import get_client

from pipeline.candidates.context import NightContext
from pipeline.candidates.filters import pairs_isin
from pipeline.candidates.retrieve import filter_candidates, retrieve, target_users
from pipeline.candidates.sorting import lexsort, rank_within
from pipeline.config import CandidatesSpec, TrainingRowsSpec
from pipeline.io import DAY, ITEM, TIME, USER, stable_pair_unit, stable_unit
from pipeline.rows.signals import add_signals, join_side_tables, signal_features

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


def ranker_feature_columns(workflow: Any, candidates: CandidatesSpec, repeat_on: bool) -> list[str]:
    """The model's inputs: the candidate signals and every column the feature workflow produces,
    except the user id (a per-user identifier memorises rather than generalises)."""
    produced = [c for c, col in workflow.output_schema.items() if col["ops"] and c != USER]
    return signal_features(candidates, repeat_on) + produced


CHUNK_USERS = 1024  # users retrieved at once: bounds the dense EASE^R block and the frames


@dataclass(frozen=True, eq=False)
class Chunk:
    """Stages 1-2 and the rank stage's input for one chunk of users: ``rows`` are the filtered
    candidates with raw ids and every signal, ``features`` the same rows (same order) after
    the side tables and the feature workflow, ``history`` the users' events before the
    cutoff."""

    users: np.ndarray
    rows: pd.DataFrame
    features: pd.DataFrame
    history: pd.DataFrame


def candidate_chunks(events: pd.DataFrame, ctx: NightContext, users: np.ndarray, *,
                     stats: Stats | None = None) -> Iterator[Chunk]:
    """``Chunk`` after ``Chunk`` of at most ``CHUNK_USERS`` of ``users`` (sorted ids of this
    partition): a caller keeps only what it needs of each (scores, lists, sampled rows), so a
    task's memory follows the chunk, not the partition. ``stats`` (when given) collects the rows
    each filter rule removed (``removed.<rule>``) and seconds per stage."""
    history = events[(events[TIME] < ctx.cutoff) & events[USER].isin(users)]
    history = history.iloc[np.argsort(history[USER].to_numpy(), kind="stable")]
    history_users = history[USER].to_numpy()
    workflow = load_feature_workflow(ctx.workflow_dir)
    for start in range(0, len(users), CHUNK_USERS):
        chunk = users[start:start + CHUNK_USERS]
        lo = np.searchsorted(history_users, chunk[0], side="left")
        hi = np.searchsorted(history_users, chunk[-1], side="right")
        mine = history.iloc[lo:hi]
        with timed(stats, "retrieve"):
            retrieved = retrieve(chunk, mine, ctx)
        with timed(stats, "filter"):
            rows, removed = filter_candidates(retrieved.rows, mine, ctx)
        count_removed(stats, removed)
        if stats is not None:
            stats["candidates.retrieved"] = (stats.get("candidates.retrieved", 0)
                                             + len(retrieved.rows))
            stats["candidates.ranked"] = stats.get("candidates.ranked", 0) + len(rows)
        with timed(stats, "rank"):
            rows = add_signals(retrieved, rows, mine, ctx)
            features = workflow.transform(join_side_tables(rows, ctx.users, ctx.items))
        yield Chunk(chunk, rows, features, mine)


@dataclass(frozen=True, eq=False)
class LabelWindows:
    """The label windows a night trains on, broadcast once: each window's context (statistics
    as of its start), its end, and the share of its users to sample."""

    contexts: tuple[NightContext, ...]
    ends: tuple[int, ...]
    user_shares: tuple[float, ...]
    features: tuple[str, ...]
    relevant: str
    rows: TrainingRowsSpec
    seed: int
    validation_fraction: float


def known_window_users(events: pd.DataFrame, cutoff: int, end: int, relevant: str) -> np.ndarray:
    """Users with a relevant event in ``[cutoff, end)`` and history before ``cutoff``: the
    queries a window can teach (a user new in the window gets only popular items)."""
    users = target_users(events, cutoff, end, relevant)
    before = events.loc[events[TIME] < cutoff, USER].unique()
    return users[np.isin(users, before)]


def training_partition(events: pd.DataFrame, windows: LabelWindows,
                       partition_info: dict | None = None) -> pd.DataFrame:
    """Ranker training rows of every label window for one partition of users: a sample of the
    window's users, their candidates as of its start with graded labels (``window_labels``),
    queries without a positive dropped and negatives capped per query. Rows come out sorted by
    ``qid`` (one per user and window), and qids grow with the partition number, so every
    worker's rows reach XGBoost already in order."""
    number = (partition_info or {}).get("number", 0)
    spec = windows.rows
    blocks = []
    for w, (ctx, end, share) in enumerate(zip(windows.contexts, windows.ends,
                                              windows.user_shares, strict=True)):
        users = known_window_users(events, ctx.cutoff, end, windows.relevant)
        users = users[stable_unit(users, windows.seed * 7919 + w + 1) < share]
        window = events[(events[TIME] >= ctx.cutoff) & (events[TIME] < end)]
        for chunk in candidate_chunks(events, ctx, users):
            rows, encoded = chunk.rows, chunk.features
            label = window_labels(rows, window, windows.relevant)
            keep = _sampled(rows[USER].to_numpy(), rows[ITEM].to_numpy(), label > 0, spec,
                            windows.seed + w)
            block = encoded.loc[keep, list(windows.features)].astype(np.float32)
            block["label"] = label[keep].astype(np.float32)
            block["_user"] = rows[USER].to_numpy()[keep]
            block["_window"] = w
            blocks.append(block.reset_index(drop=True))
    if not blocks:
        return _no_training_rows(windows)
    out = pd.concat(blocks, ignore_index=True)
    out = out.iloc[lexsort((out["_window"].to_numpy(), out["_user"].to_numpy()))]
    query = np.cumsum(np.r_[True, (np.diff(out["_window"].to_numpy()) != 0)
                            | (out["_user"].to_numpy()[1:] != out["_user"].to_numpy()[:-1])]
                      if len(out) else np.zeros(0, dtype=bool)) - 1
    # A user's hash in [0, 1): the validation users (and other seeds' choices of them).
    out["user_key"] = stable_unit(out["_user"].to_numpy(), windows.seed).astype(np.float32)
    out["is_valid"] = out["user_key"].to_numpy() < windows.validation_fraction
    out["qid"] = np.int64(number) * QIDS_PER_PARTITION + query.astype(np.int64)
    return out.drop(columns=["_user", "_window"]).reset_index(drop=True)


def window_labels(rows: pd.DataFrame, window: pd.DataFrame, relevant: str) -> np.ndarray:
    """Graded relevance of each candidate row from the user's events in the window: 3 when the
    user had the item relevantly in their first session of the window, 2 relevantly later, 1
    when they had it but not relevantly (a rating under the threshold: still an interaction),
    else 0. The next session is what a list published tonight meets first; the rest of the
    window is the longer horizon the lists are judged on."""
    users, items = rows[USER].to_numpy(), rows[ITEM].to_numpy()
    good = window[window[relevant].to_numpy() > 0]
    day = good[TIME].to_numpy() // DAY
    first = pd.Series(day).groupby(good[USER].to_numpy()).transform("min").to_numpy()
    label = pairs_isin(users, items, window).astype(np.int8)
    label += pairs_isin(users, items, good).astype(np.int8)
    label += pairs_isin(users, items, good[day == first]).astype(np.int8)
    return label


def _no_training_rows(windows: LabelWindows) -> pd.DataFrame:
    """Training rows of a partition without any query (their columns and dtypes)."""
    columns = {c: np.float32 for c in (*windows.features, "label", "user_key")}
    frame = pd.DataFrame({c: np.empty(0, dtype=t) for c, t in columns.items()})
    return frame.assign(is_valid=np.empty(0, dtype=bool), qid=np.empty(0, dtype=np.int64))


QIDS_PER_PARTITION = 2**22  # qid = partition number x this + the query's index in it (< 2^31)


def _sampled(users: np.ndarray, items: np.ndarray, label: np.ndarray, spec: TrainingRowsSpec,
             seed: int) -> np.ndarray:
    """Rows to keep: every row of a query (user) with a positive, with its negatives capped at
    ``max(min_negatives, negatives_per_positive x positives)``, chosen at random (seeded)."""
    if len(users) == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, len(users)])
    query = np.empty(len(users), dtype=np.int64)
    query[order] = np.repeat(np.arange(len(starts)), sizes)
    positives = np.bincount(query, weights=label.astype(np.float64), minlength=len(starts))
    cap = np.maximum(spec.min_negatives, spec.negatives_per_positive * positives)
    noise = stable_pair_unit(users, items, seed) + query  # negatives in random order, per query
    negatives = ~label
    rank = np.empty(len(users), dtype=np.int64)
    by_noise = np.flatnonzero(negatives)[np.argsort(noise[negatives], kind="stable")]
    rank[by_noise] = rank_within(query[by_noise])
    return (positives[query] > 0) & (label | (rank <= cap[query]))


def map_user_partitions(
    events: dd.DataFrame, fn: Callable[..., pd.DataFrame], *args: Any
) -> dd.DataFrame:
    """Apply ``fn(partition, *args)`` to every partition; its output schema comes from running
    it on an empty partition locally. Contexts and label windows are scattered to the cluster
    once rather than embedded in the task graph (their models can be megabytes)."""
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in events.dtypes.items()})
    meta = fn(empty, *args)
    client = get_client()
    shared = [client.scatter(a, hash=False) if isinstance(a, NightContext | LabelWindows) else a
              for a in args]
    return events.map_partitions(fn, *shared, meta=meta, align_dataframes=False)
