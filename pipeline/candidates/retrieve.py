"""Stages 1 and 2 for one chunk of users: every configured generator merged (retrieve), then the
seen rule and the business rules (filter). Retrieval keeps the generators' score tables so that
every candidate can carry every generator's score, not only the generator that proposed it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.candidates.context import NightContext
from pipeline.candidates.ease import EaseScores
from pipeline.candidates.embedding import EmbeddingIndex
from pipeline.candidates.filters import pairs_isin, seen_pairs
from pipeline.candidates.generators import (
    SOURCE_COOCCURRENCE,
    SOURCE_EASE,
    SOURCE_EMBEDDING,
    SOURCE_POPULARITY,
    SOURCE_REPEAT,
    CooccurrenceScores,
    cooccurrence_scores,
    merge_candidates,
    popularity_candidates,
    repeat_candidates,
)
from pipeline.candidates.rules import RULE_SEEN
from pipeline.io import ITEM, TIME, USER


def target_users(events: pd.DataFrame, cutoff: int, window_end: int | None,
                 relevant: str | None = None) -> np.ndarray:
    """Users with an event in ``[cutoff, window_end)`` (with ``relevant``: a relevant one),
    sorted; everyone when ``window_end`` is None."""
    if window_end is None:
        users = events[USER]
    else:
        in_window = (events[TIME] >= cutoff) & (events[TIME] < window_end)
        if relevant is not None:
            in_window &= events[relevant].to_numpy() > 0
        users = events.loc[in_window, USER]
    return np.sort(users.unique())


@dataclass(frozen=True, eq=False)
class Retrieved:
    """Merged candidates (``user_id, item_id``, one rank column per generator, ``source``) and
    the score tables behind them, for scoring any candidate with any generator."""

    rows: pd.DataFrame
    ease: EaseScores | None
    cooccurrence: CooccurrenceScores | None
    embedding: EmbeddingIndex | None


def retrieve(users: np.ndarray, history: pd.DataFrame, ctx: NightContext) -> Retrieved:
    """Stage 1: every configured generator for ``users`` (sorted) from their ``history``."""
    spec = ctx.candidates
    found = {SOURCE_POPULARITY: popularity_candidates(users, ctx.popular, spec.popularity.n)}
    cooccurrence = None
    if spec.cooccurrence is not None and ctx.neighbor_graph is not None:
        cooccurrence = cooccurrence_scores(history, ctx.neighbor_graph,
                                           spec.cooccurrence.recent_items)
        found[SOURCE_COOCCURRENCE] = cooccurrence.top_n(spec.cooccurrence.n)
    if ctx.repeat_on:
        found[SOURCE_REPEAT] = repeat_candidates(history, spec.repeat.n)
    ease = None
    if spec.ease is not None and ctx.ease is not None:
        ease = ctx.ease.block(users, history)
        found[SOURCE_EASE] = ease.top_n(spec.ease.n, ctx.exclude_seen and
                                        ctx.seen_window_days is None)
    index = ctx.embedding_index()
    if index is not None:
        found[SOURCE_EMBEDDING] = index.top_n(users, spec.embedding.n, spec.embedding.search,
                                              spec.embedding.faiss_min_items)
    return Retrieved(merge_candidates(found), ease, cooccurrence, index)


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
