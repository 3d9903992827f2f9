"""Stages 1 and 2 for one partition of users: every configured generator merged (retrieve),
then the seen rule and the business rules (filter)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.candidates.context import NightContext
from pipeline.candidates.filters import pairs_isin, seen_pairs
from pipeline.candidates.generators import (
    cooccurrence_candidates,
    merge_candidates,
    popularity_candidates,
    repeat_candidates,
)
from pipeline.candidates.rules import RULE_SEEN
from pipeline.io import ITEM, TIME, USER


def target_users(events: pd.DataFrame, cutoff: int, window_end: int | None) -> np.ndarray:
    """Users with an event in ``[cutoff, window_end)`` (everyone when ``window_end`` is None),
    sorted."""
    if window_end is None:
        users = events[USER]
    else:
        in_window = (events[TIME] >= cutoff) & (events[TIME] < window_end)
        users = events.loc[in_window, USER]
    return np.sort(users.unique())


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
