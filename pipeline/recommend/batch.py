"""Stages 3 and 4 for one partition of users, and their fan-out: score the candidate rows with
the ranker (or popularity), then boosts, caps, diversity, top-k and the fallback for short lists.
Only small lists and statistics leave the worker."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import get_client

from pipeline.candidates.context import NightContext
from pipeline.candidates.retrieve import excluded_seen, target_users
from pipeline.candidates.rules import RULE_CATEGORY_CAP
from pipeline.candidates.sorting import rank_within
from pipeline.io import ITEM, USER
from pipeline.progress import Progress
from pipeline.rankers.ranker import load_scorer
from pipeline.rankers.signal import signal_scores
from pipeline.recommend.reorder import ORDER, ReorderPlan, boost_and_sort, diversify
from pipeline.recommend.topk import LIST_COLUMNS, fill_short_lists, first_k, top_k
from pipeline.rows.build import Stats, candidate_chunks, count_removed, timed

RANKER = "ranker"  # the trained model's lists; any other source is a signal baseline


def recommend_lists(
    events: pd.DataFrame, ctx: NightContext, model_dir: str | None, users: np.ndarray,
    reorder: ReorderPlan | None = None, signal: str | None = None,
) -> tuple[pd.DataFrame, Stats]:
    """Stages 1-4 for ``users`` of one partition: lists of ``(user_id, rank, item_id, score,
    source)`` scored by the ranker in ``model_dir``, or by the signal baseline ``signal``; and
    their statistics: rows removed per filter rule and seconds per stage."""
    stats: Stats = {}
    scorer = load_scorer(model_dir) if signal is None else None
    parts = []
    for chunk in candidate_chunks(events, ctx, users, stats=stats):
        with timed(stats, "rank"):
            score = (signal_scores(chunk.rows, signal) if scorer is None
                     else scorer.score(chunk.features))
            scored = chunk.rows[[USER, ITEM, "source"]].assign(score=score)
        with timed(stats, "reorder"):
            parts.append(final_lists(scored, chunk.users, chunk.history, ctx, stats, reorder))
    lists = pd.concat(parts, ignore_index=True) if parts else _no_lists(events, ctx)
    return lists, stats


def _no_lists(events: pd.DataFrame, ctx: NightContext) -> pd.DataFrame:
    """The lists of no users, with the dtypes of any."""
    return pd.DataFrame({USER: events[USER].to_numpy()[:0], "rank": np.empty(0, np.int64),
                         ITEM: events[ITEM].to_numpy()[:0], "score": np.empty(0, np.float32),
                         "source": pd.array([], dtype="str")})


def final_lists(scored: pd.DataFrame, users: np.ndarray, history: pd.DataFrame,
                ctx: NightContext, stats: Stats | None = None,
                reorder: ReorderPlan | None = None) -> pd.DataFrame:
    """Stage 4: boosts, the category cap (a filter rule that needs scores), diversity, top-k,
    and the fallback for short lists under the same rules."""
    ordered = boost_and_sort(scored, reorder)
    rules = ctx.rules
    if rules is not None and rules.max_per_category is not None:
        keep = rules.within_cap(ordered)
        count_removed(stats, {RULE_CATEGORY_CAP: int((~keep).sum())})
        ordered = ordered.loc[keep].reset_index(drop=True)
    diversity = reorder.diversity if reorder is not None else None
    if diversity is None:  # already best first: the first k rows per user are the list
        lists = first_k(ordered, ctx.k)
    else:
        if diversity.method == "mmr":  # MMR only looks at each user's best ``pool`` rows
            position = rank_within(ordered[USER].to_numpy())
            ordered = ordered.loc[position <= max(ctx.k, diversity.pool)]
        lists = top_k(diversify(ordered, reorder, ctx.k), ctx.k, key=ORDER)
    return fill_short_lists(
        lists, users, ctx.popular, excluded_seen(history, ctx), ctx.k,
        allowed=rules.allowed if rules is not None else None,
        capped=rules.within_cap if rules is not None and rules.max_per_category else None,
    )


def _write_lists(events: pd.DataFrame, ctx: NightContext, model_dir: str | None, path: str,
                 reorder: ReorderPlan | None, signal: str | None) -> Stats:
    users = target_users(events, ctx.cutoff, None)
    lists, stats = recommend_lists(events, ctx, model_dir, users, reorder, signal)
    lists = lists.astype({"rank": "int64", "score": "float32"})[LIST_COLUMNS]
    lists.to_parquet(path, index=False)
    sizes = lists.groupby(USER).size()
    stats.update(rows=len(lists), users=len(sizes), full_lists=int((sizes >= ctx.k).sum()))
    return stats


def write_recommendations(events: dd.DataFrame, ctx: NightContext, model_dir: str | None,
                          out: Path, reorder: ReorderPlan | None = None,
                          signal: str | None = None, progress: Progress | None = None) -> Stats:
    """Stages 1-4 for every user over every partition, one Parquet file per partition under
    ``out``, and the partitions' statistics summed (rows, users, full lists, removed per rule,
    stage seconds). Only the small statistics dicts come back to the client."""
    out.mkdir(parents=True, exist_ok=True)
    shared = get_client().scatter(ctx, hash=False)
    tasks = [dask.delayed(_write_lists)(part, shared, model_dir,
                                        str(out / f"part.{i:05d}.parquet"), reorder, signal)
             for i, part in enumerate(events.to_delayed())]
    total: Stats = {}
    for stats in (progress or Progress(None)).compute(tasks):
        for key, value in stats.items():
            total[key] = total.get(key, 0) + value
    return total
