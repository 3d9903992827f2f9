"""Stage 4, reorder: business boosts and diversity between the ranker's scores and the final
top-k, vectorised per partition. MMR loops over the k list positions, never over users or rows:
each step picks every user's next item at once from a (users x pool) matrix.

The result is an ``order`` column (higher comes first) that ``top_k`` sorts by; ``score`` keeps
the ranker's (boosted) score so published scores stay comparable across users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.candidates.rules import (
    NO_CATEGORY,
    category_series,
    condition_mask,
    require_column,
    within_cap,
)
from pipeline.candidates.sorting import run_start_indices
from pipeline.config import Boost, DiversitySpec, ReorderSpec
from pipeline.errors import ConfigError
from pipeline.io import ITEM, USER
from pipeline.recommend.topk import best_first

ORDER = "order"
_PICKED = 2.0  # order values of MMR picks start above every relevance in [0, 1]


@dataclass(frozen=True)
class ReorderPlan:
    """``factors``: item id -> product of the matching boosts; ``category``: item id -> code of
    the diversity column; ``diversity``: its settings (None: no diversity)."""

    factors: pd.Series | None = None
    category: pd.Series | None = None
    diversity: DiversitySpec | None = None


def resolve_reorder(spec: ReorderSpec, items: pd.DataFrame | None,
                    source: str) -> ReorderPlan | None:
    """The ``reorder`` section against the item table, once per night (None: nothing to do)."""
    if spec.diversity is None and not spec.boosts:
        return None
    if items is None:
        raise ConfigError("reorder.diversity / reorder.boosts read item attributes, but the "
                          "workflow has no data.items table; add 'data.items: {path, key}'")
    factors = boost_factors(items, spec.boosts, source) if spec.boosts else None
    category = None
    if spec.diversity is not None:
        require_column(items, spec.diversity.column, "reorder.diversity", source)
        category = category_series(items, spec.diversity.column)
    return ReorderPlan(factors=factors, category=category, diversity=spec.diversity)


def boost_factors(items: pd.DataFrame, boosts: list[Boost], source: str) -> pd.Series:
    """item id -> product of the factors of every boost whose condition the item meets."""
    factor = np.ones(len(items), dtype=np.float64)
    for i, boost in enumerate(boosts):
        hit = condition_mask(items, boost, f"reorder.boosts[{i}]", source)
        factor[hit] *= boost.factor
    return pd.Series(factor, index=items[ITEM].to_numpy())


def apply_boosts(scored: pd.DataFrame, factors: pd.Series) -> pd.DataFrame:
    """Multiply scores by the item's boost factor. Ranking margins can be negative, so scores
    are first shifted per user to start at 1 (order within a user is unchanged)."""
    factor = factors.reindex(scored[ITEM].to_numpy()).fillna(1.0).to_numpy()
    score = scored["score"].to_numpy(dtype=np.float64)
    low = pd.Series(score).groupby(scored[USER].to_numpy()).transform("min").to_numpy()
    boosted = (score - low + 1.0) * factor
    return scored.assign(score=boosted.astype(np.float32))


def reorder(scored: pd.DataFrame, plan: ReorderPlan | None, k: int) -> pd.DataFrame:
    """Boosts, then diversity: rows sorted best first per user with an ``order`` column."""
    return diversify(boost_and_sort(scored, plan), plan, k)


def boost_and_sort(scored: pd.DataFrame, plan: ReorderPlan | None) -> pd.DataFrame:
    """Boosted scores, rows sorted by user then score (best first), then item id."""
    if plan is not None and plan.factors is not None:
        scored = apply_boosts(scored, plan.factors)
    return scored.iloc[best_first(scored)].reset_index(drop=True)


def diversify(ordered: pd.DataFrame, plan: ReorderPlan | None, k: int) -> pd.DataFrame:
    """Add ``order`` to rows from ``boost_and_sort``: relevance, or the MMR / caps order."""
    users = ordered[USER].to_numpy()
    relevance = _relevance(users, ordered["score"].to_numpy(dtype=np.float64))
    if plan is None or plan.diversity is None or len(ordered) == 0:
        return ordered.assign(**{ORDER: relevance})
    codes = plan.category.reindex(ordered[ITEM].to_numpy()).fillna(NO_CATEGORY)
    codes = codes.to_numpy(dtype=np.int64)
    div = plan.diversity
    if div.method == "caps":
        demoted = ~within_cap(users, codes, div.m)
        return ordered.assign(**{ORDER: relevance - 2.0 * demoted})
    return ordered.assign(**{ORDER: mmr_order(users, relevance, codes, k, div.lambda_,
                                              div.pool)})


def _relevance(users: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Scores min-max scaled to [0, 1] within each user (1 where a user's scores are equal);
    rows are grouped by user, so ``reduceat`` over the runs replaces a groupby."""
    if len(users) == 0:
        return score.astype(np.float64)
    starts = run_start_indices(users)
    sizes = np.diff(np.r_[starts, len(users)])
    low = np.repeat(np.minimum.reduceat(score, starts), sizes)
    span = np.repeat(np.maximum.reduceat(score, starts), sizes) - low
    return np.where(span > 0, (score - low) / np.where(span > 0, span, 1.0), 1.0)


def mmr_order(users: np.ndarray, relevance: np.ndarray, codes: np.ndarray, k: int,
              lam: float, pool: int) -> np.ndarray:
    """Greedy MMR over rows grouped by user and sorted best first: step t picks, for every user
    at once, the pool item maximising ``lam * relevance - (1 - lam) * [category already
    picked]``. Picks get order ``_PICKED + k - t``; the rest keep their relevance."""
    n = len(users)
    starts = run_start_indices(users)
    sizes = np.diff(np.r_[starts, n])
    width = int(min(pool, sizes.max()))
    group = np.repeat(np.arange(len(starts)), sizes)
    position = np.arange(n) - starts[group]
    inside = position < width
    rel = np.zeros((len(starts), width))
    cat = np.full((len(starts), width), NO_CATEGORY, dtype=np.int64)
    open_ = np.zeros((len(starts), width), dtype=bool)  # a candidate not yet picked
    rel[group[inside], position[inside]] = relevance[inside]
    cat[group[inside], position[inside]] = codes[inside]
    open_[group[inside], position[inside]] = True
    covered = np.zeros(rel.shape, dtype=bool)
    order = relevance.copy()
    rows = np.arange(len(starts))
    for step in range(min(k, width)):
        gain = np.where(open_, lam * rel - (1.0 - lam) * covered, -np.inf)
        best = np.argmax(gain, axis=1)
        alive = open_[rows, best]
        pick_rows, pick_cols = rows[alive], best[alive]
        order[starts[pick_rows] + pick_cols] = _PICKED + k - step
        open_[pick_rows, pick_cols] = False
        picked_cat = cat[pick_rows, pick_cols]
        same = (cat[pick_rows] == picked_cat[:, None]) & (picked_cat[:, None] != NO_CATEGORY)
        covered[pick_rows] |= same
    return order
