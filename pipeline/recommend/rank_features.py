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
    popularity on a temporal split."""
    stats = popular[[ITEM, "pop_count", "pop_recent", "pop_week", "pop_3day", "item_age_days",
                     "item_idle_days"]]
    rows = candidates.merge(stats, on=ITEM, how="left")
    activity = history.groupby(USER).agg(events=(ITEM, "size"), last=(TIME, "max"))
    activity = activity.reindex(rows[USER].to_numpy())
    events = activity["events"].fillna(0).to_numpy(dtype=np.float64)
    last = activity["last"].to_numpy(dtype=np.float64)
    rows["pop_rank_log"] = np.log1p(rows["pop_rank"].to_numpy(dtype=np.float64))
    rows["cooc_rank_log"] = np.log1p(rows["cooc_rank"].to_numpy(dtype=np.float64))
    rows["pop_count_log"] = np.log1p(rows["pop_count"].fillna(0).to_numpy(dtype=np.float64))
    rows["pop_recent_log"] = np.log1p(rows["pop_recent"].fillna(0).to_numpy(dtype=np.float64))
    rows["pop_week_log"] = np.log1p(rows["pop_week"].fillna(0).to_numpy(dtype=np.float64))
    rows["pop_3day_log"] = np.log1p(rows["pop_3day"].fillna(0).to_numpy(dtype=np.float64))
    # Repeat consumption: how often the user already took this item (0 when seen items are
    # filtered out, as on MovieLens; the strongest signal where people come back).
    repeats = pair_counts(rows[USER].to_numpy(), rows[ITEM].to_numpy(), history)
    rows["user_item_repeat_log"] = np.log1p(repeats.astype(np.float64))
    rows["user_events_log"] = np.log1p(events)
    rows["user_days_since_last"] = (cutoff - last) / DAY
    # Share of this item's all-time audience the user's activity level represents: a cheap
    # interaction of user activity and item popularity.
    rows["user_seen_share"] = events / (1.0 + rows["pop_count"].fillna(0).to_numpy())
    return rows.drop(columns=["pop_count", "pop_recent", "pop_week", "pop_3day"])


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
