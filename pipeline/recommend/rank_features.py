"""Ranker input rows: (user, candidate) pairs joined with candidate-generator signals, item
popularity, the user's activity and the side tables, then passed through the saved feature
workflow, the same code at training and at serving time (train/serve parity)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.io import ITEM, TIME, USER
from pipeline.recommend.filters import pair_counts
from pipeline.recommend.popularity import DAY

SIGNAL_FEATURES = [
    "pop_rank_log",
    "cooc_rank_log",
    "cooc_score",
    "pop_count_log",
    "pop_recent_log",
    "pop_week_log",
    "pop_3day_log",
    "item_age_days",
    "item_idle_days",
    "user_item_repeat_log",
    "user_events_log",
    "user_days_since_last",
    "user_seen_share",
]


def add_signals(
    candidates: pd.DataFrame, history: pd.DataFrame, popular: pd.DataFrame, cutoff: int
) -> pd.DataFrame:
    """Add the ``SIGNAL_FEATURES`` columns: recency and repeat signals the rankers need to beat
    popularity on a temporal split.

    Item statistics are gathered by position (one hash lookup of the candidates' items in the
    popularity table) and every column is computed as a numpy array, then the frame is built
    once: a merge and column-by-column inserts cost more than the arithmetic.
    """
    items, users = candidates[ITEM].to_numpy(), candidates[USER].to_numpy()
    item_at = pd.Index(popular[ITEM].to_numpy()).get_indexer(items)

    def item_stat(column: str) -> np.ndarray:
        """The candidates' item statistic; NaN for items the popularity table lacks."""
        values = popular[column].to_numpy()
        if (item_at >= 0).all():
            return values[item_at]
        out = np.full(len(items), np.nan)
        out[item_at >= 0] = values[item_at[item_at >= 0]]
        return out

    def count_log(column: str) -> np.ndarray:
        return np.log1p(np.nan_to_num(item_stat(column).astype(np.float64), nan=0.0))

    activity = history.groupby(USER).agg(events=(ITEM, "size"), last=(TIME, "max"))
    user_at = activity.index.get_indexer(users)
    known = user_at >= 0
    events = np.zeros(len(users))
    events[known] = activity["events"].to_numpy(dtype=np.float64)[user_at[known]]
    last = np.full(len(users), np.nan)
    last[known] = activity["last"].to_numpy(dtype=np.float64)[user_at[known]]
    pop_count = np.nan_to_num(item_stat("pop_count").astype(np.float64), nan=0.0)
    # Repeat consumption: how often the user already took this item (0 when seen items are
    # filtered out, as on MovieLens; the strongest signal where people come back).
    repeats = pair_counts(users, items, history)
    signals = {
        "item_age_days": item_stat("item_age_days"),
        "item_idle_days": item_stat("item_idle_days"),
        "pop_rank_log": np.log1p(candidates["pop_rank"].to_numpy(dtype=np.float64)),
        "cooc_rank_log": np.log1p(candidates["cooc_rank"].to_numpy(dtype=np.float64)),
        "pop_count_log": np.log1p(pop_count),
        "pop_recent_log": count_log("pop_recent"),
        "pop_week_log": count_log("pop_week"),
        "pop_3day_log": count_log("pop_3day"),
        "user_item_repeat_log": np.log1p(repeats.astype(np.float64)),
        "user_events_log": np.log1p(events),
        "user_days_since_last": (cutoff - last) / DAY,
        # Share of this item's all-time audience the user's activity level represents: a cheap
        # interaction of user activity and item popularity.
        "user_seen_share": events / (1.0 + pop_count),
    }
    base = candidates.reset_index(drop=True)
    return pd.concat([base, pd.DataFrame(signals, index=base.index)], axis=1)


def join_side_tables(
    rows: pd.DataFrame, users: pd.DataFrame | None, items: pd.DataFrame | None
) -> pd.DataFrame:
    """Left-join user and item attributes (tables indexed by id) without reordering rows."""
    if users is not None:
        rows = rows.join(users, on=USER)
    if items is not None:
        rows = rows.join(items, on=ITEM)
    return rows


def feature_matrix(rows: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The float32 matrix the ranker reads, columns in the model's saved order."""
    return rows[columns].to_numpy(dtype=np.float32, na_value=np.nan)
