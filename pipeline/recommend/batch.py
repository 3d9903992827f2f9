"""The four stages for one partition of users, and their fan-out over a Dask dataframe.

Every function here takes one pandas partition of the user-partitioned event log (all of a user's
events sit in one partition) plus a small broadcast ``NightContext``; memory is bounded by the
partition, and only small lists or feature rows leave the worker.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import get_client

from pipeline.config import CandidatesSpec
from pipeline.io import ITEM, TIME, USER
from pipeline.recommend.candidates import (
    NeighbourGraph,
    cooccurrence_candidates,
    merge_candidates,
    neighbour_graph,
    popularity_candidates,
    repeat_candidates,
)
from pipeline.recommend.embedding import EmbeddingIndex, load_embedding_index
from pipeline.recommend.filters import pairs_isin, seen_pairs
from pipeline.recommend.rank_features import (
    EMBEDDING_SIGNALS,
    SIGNAL_FEATURES,
    add_signals,
    join_side_tables,
)
from pipeline.recommend.reorder import ORDER, ReorderPlan, boost_and_sort, diversify
from pipeline.recommend.rules import RULE_CATEGORY_CAP, RULE_SEEN, FilterRules
from pipeline.recommend.sorting import rank_within
from pipeline.recommend.topk import (
    LIST_COLUMNS,
    fill_short_lists,
    first_k,
    top_k,
)
from pipeline.train.rankers import load_scorer


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
    seen_window_days: float | None = None
    rules: FilterRules | None = None  # business rules: the nightly lists only
    reorder: ReorderPlan | None = None
    embedding_dir: str | None = None  # the retrieval model trained on history before cutoff

    def embedding_index(self) -> EmbeddingIndex | None:
        """The retrieval model when the embedding generator is on (loaded once per process)."""
        if self.embedding_dir is None or self.candidates.embedding is None:
            return None
        return load_embedding_index(self.embedding_dir)

    @functools.cached_property
    def neighbour_graph(self) -> NeighbourGraph | None:
        """The neighbours as a sparse matrix, built on first use in each process (a worker
        keeps its scattered context, so once per worker, not once per partition)."""
        return neighbour_graph(self.neighbours) if self.neighbours is not None else None


Stats = dict[str, float]


@contextmanager
def _timed(stats: Stats | None, stage: str) -> Iterator[None]:
    """Add the block's wall seconds to ``stats['seconds.<stage>']`` (summed over partitions)."""
    started = time.perf_counter()
    yield
    if stats is not None:
        key = f"seconds.{stage}"
        stats[key] = stats.get(key, 0.0) + time.perf_counter() - started


def _count(stats: Stats | None, removed: dict[str, int]) -> None:
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


def target_users(events: pd.DataFrame, cutoff: int, window_end: int | None) -> np.ndarray:
    if window_end is None:
        users = events[USER]
    else:
        in_window = (events[TIME] >= cutoff) & (events[TIME] < window_end)
        users = events.loc[in_window, USER]
    return np.sort(users.unique())


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
    with _timed(stats, "retrieve"):
        rows = retrieve(users, history, ctx, rank)
    with _timed(stats, "filter"):
        retrieved = len(rows)
        rows, removed = filter_candidates(rows, history, ctx)
    _count(stats, removed)
    if stats is not None:
        stats["candidates.retrieved"] = stats.get("candidates.retrieved", 0) + retrieved
        stats["candidates.ranked"] = stats.get("candidates.ranked", 0) + len(rows)
    if not rank:
        return rows, None, history, users
    with _timed(stats, "rank"):
        features = add_signals(rows, history, ctx.popular, ctx.cutoff, ctx.embedding_index())
        features = join_side_tables(features, ctx.users, ctx.items)
        features = load_feature_workflow(ctx.workflow_dir).transform(features)
    return rows, features, history, users


def retrieve(users: np.ndarray, history: pd.DataFrame, ctx: NightContext,
             rank: bool = True) -> pd.DataFrame:
    """Stage 1: every configured generator, merged on (user, item) with ``source``."""
    spec = ctx.candidates
    by_pop = popularity_candidates(users, ctx.popular, spec.popularity.n)
    by_cooc = pd.DataFrame({USER: by_pop[USER].iloc[:0], ITEM: by_pop[ITEM].iloc[:0],
                            "cooc_score": np.float32(), "cooc_rank": np.int64()})
    if rank and ctx.neighbours is not None and spec.cooccurrence is not None:
        by_cooc = cooccurrence_candidates(history, ctx.neighbours,
                                          spec.cooccurrence.recent_items, spec.cooccurrence.n,
                                          ctx.neighbour_graph)
    by_repeat = None
    if rank and spec.repeat is not None:
        by_repeat = repeat_candidates(history, spec.repeat.n)
    by_embedding = None
    index = ctx.embedding_index() if rank else None
    if index is not None:
        by_embedding = index.top_n(users, spec.embedding.n, spec.embedding.search,
                                   spec.embedding.faiss_min_items)
    return merge_candidates(by_pop, by_cooc, by_repeat, by_embedding)


def excluded_seen(history: pd.DataFrame, ctx: NightContext) -> pd.DataFrame:
    """The (user, item) pairs the seen rule removes: none, all of history, or its window."""
    if not ctx.exclude_seen:
        return history[[USER, ITEM]].iloc[:0]
    return seen_pairs(history, ctx.cutoff, ctx.seen_window_days)


def filter_candidates(rows: pd.DataFrame, history: pd.DataFrame,
                      ctx: NightContext) -> tuple[pd.DataFrame, dict[str, int]]:
    """Stage 2: the seen rule, then the business rules; rows each removed, by rule name."""
    removed: dict[str, int] = {}
    if ctx.exclude_seen:
        seen = pairs_isin(rows[USER].to_numpy(), rows[ITEM].to_numpy(),
                          excluded_seen(history, ctx))
        removed[RULE_SEEN] = int(seen.sum())
        rows = rows.loc[~seen]
    if ctx.rules is not None:
        rows, by_rule = ctx.rules.apply(rows)
        removed.update(by_rule)
    return rows.reset_index(drop=True), removed


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
    return recommend_lists(events, ctx, model_dir, window_end)[0]


def recommend_lists(
    events: pd.DataFrame, ctx: NightContext, model_dir: str | None, window_end: int | None
) -> tuple[pd.DataFrame, Stats]:
    """``recommend_partition`` plus its statistics: rows removed per filter rule and seconds
    per stage (retrieve, filter, rank, reorder)."""
    stats: Stats = {}
    if model_dir is None:
        rows, _, history, users = candidate_rows(events, ctx, window_end, rank=False,
                                                 stats=stats)
        scored = rows[[USER, ITEM, "source"]].assign(
            score=(1.0 / rows["pop_rank"]).astype(np.float32))
    else:
        rows, encoded, history, users = candidate_rows(events, ctx, window_end, stats=stats)
        with _timed(stats, "rank"):
            scored = rows[[USER, ITEM, "source"]].assign(
                score=load_scorer(model_dir).score(encoded))
    with _timed(stats, "reorder"):
        lists = final_lists(scored, users, history, ctx, stats)
    return lists, stats


def final_lists(scored: pd.DataFrame, users: np.ndarray, history: pd.DataFrame,
                ctx: NightContext, stats: Stats | None = None) -> pd.DataFrame:
    """Stage 4: boosts, the category cap (a filter rule that needs scores), diversity, top-k,
    and the fallback for short lists under the same rules."""
    ordered = boost_and_sort(scored, ctx.reorder)
    rules = ctx.rules
    if rules is not None and rules.max_per_category is not None:
        keep = rules.within_cap(ordered)
        _count(stats, {RULE_CATEGORY_CAP: int((~keep).sum())})
        ordered = ordered.loc[keep].reset_index(drop=True)
    diversity = ctx.reorder.diversity if ctx.reorder is not None else None
    if diversity is None:  # already best first: the first k rows per user are the list
        lists = first_k(ordered, ctx.k)
    else:
        if diversity.method == "mmr":  # MMR only looks at each user's best ``pool`` rows
            position = rank_within(ordered[USER].to_numpy())
            ordered = ordered.loc[position <= max(ctx.k, diversity.pool)]
        lists = top_k(diversify(ordered, ctx.reorder, ctx.k), ctx.k, key=ORDER)
    return fill_short_lists(
        lists, users, ctx.popular, excluded_seen(history, ctx), ctx.k,
        allowed=rules.allowed if rules is not None else None,
        capped=rules.within_cap if rules is not None and rules.max_per_category else None,
    )


def _write_lists(events: pd.DataFrame, ctx: NightContext, model_dir: str | None,
                 window_end: int | None, path: str) -> Stats:
    lists, stats = recommend_lists(events, ctx, model_dir, window_end)
    lists = lists.astype({"rank": "int64", "score": "float32"})[LIST_COLUMNS]
    lists.to_parquet(path, index=False)
    sizes = lists.groupby(USER).size()
    stats.update(rows=len(lists), users=len(sizes), full_lists=int((sizes >= ctx.k).sum()))
    return stats


def write_recommendations(events: dd.DataFrame, ctx: NightContext, model_dir: str | None,
                          window_end: int | None, out: Path) -> Stats:
    """Stages 1-4 over every partition, one Parquet file per partition under ``out``, and the
    partitions' statistics summed (rows, users, full lists, removed per rule, stage seconds).
    Only the small statistics dicts come back to the client."""
    out.mkdir(parents=True, exist_ok=True)
    shared = get_client().scatter(ctx, hash=False)
    tasks = [dask.delayed(_write_lists)(part, shared, model_dir, window_end,
                                        str(out / f"part.{i:05d}.parquet"))
             for i, part in enumerate(events.to_delayed())]
    total: Stats = {}
    for stats in dask.compute(*tasks):
        for key, value in stats.items():
            total[key] = total.get(key, 0) + value
    return total


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
