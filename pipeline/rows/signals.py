"""Ranker input rows: (user, candidate) pairs joined with candidate-generator signals, item
popularity, the user's activity and the side tables, then passed through the saved feature
workflow, the same code at training and at serving time (train/serve parity)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.candidates.embedding import EmbeddingIndex
from pipeline.candidates.filters import pair_counts
from pipeline.candidates.generators import NO_RANK
from pipeline.io import DAY, ITEM, TIME, USER

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
# With the embedding generator: the retrieval model's u . v + b for every candidate (NaN for a
# user or item it has no vector for) and the generator's own rank.
EMBEDDING_SIGNALS = ["emb_score", "emb_rank_log"]


def add_signals(
    candidates: pd.DataFrame, history: pd.DataFrame, popular: pd.DataFrame, cutoff: int,
    embedding: EmbeddingIndex | None = None,
) -> pd.DataFrame:
    """Add the ``SIGNAL_FEATURES`` columns: recency and repeat signals the rankers need to beat
    popularity on a temporal split; with ``embedding``, ``EMBEDDING_SIGNALS`` too.

    Per-item and per-user values (counts, their logs) are computed once on the small item and
    user tables and gathered to the candidate rows by position; the frame is built once at the
    end: a merge, column-by-column inserts and a log per candidate row cost more than that.
    """
    items, users = candidates[ITEM].to_numpy(), candidates[USER].to_numpy()
    item_at = pd.Index(popular[ITEM].to_numpy()).get_indexer(items)

    def per_item(values: np.ndarray, missing: float) -> np.ndarray:
        """``values`` (one per popularity row) for each candidate; ``missing`` for items the
        popularity table lacks."""
        return _gather(values, item_at, missing)

    def count(column: str) -> np.ndarray:
        return np.nan_to_num(popular[column].to_numpy(dtype=np.float64), nan=0.0)

    activity = history.groupby(USER).agg(events=(ITEM, "size"), last=(TIME, "max"))
    user_at = activity.index.get_indexer(users)
    user_events = activity["events"].to_numpy(dtype=np.float64)
    events = _gather(user_events, user_at, 0.0)
    last = _gather(activity["last"].to_numpy(dtype=np.float64), user_at, np.nan)
    pop_count = count("pop_count")
    # Repeat consumption: how often the user already took this item (0 when seen items are
    # filtered out, as on MovieLens; the strongest signal where people come back).
    repeats = pair_counts(users, items, history)
    signals = {
        "item_age_days": _gather(popular["item_age_days"].to_numpy(), item_at, np.nan),
        "item_idle_days": _gather(popular["item_idle_days"].to_numpy(), item_at, np.nan),
        "pop_rank_log": np.log1p(candidates["pop_rank"].to_numpy(dtype=np.float64)),
        "cooc_rank_log": np.log1p(candidates["cooc_rank"].to_numpy(dtype=np.float64)),
        "pop_count_log": per_item(np.log1p(pop_count), 0.0),
        "pop_recent_log": per_item(np.log1p(count("pop_recent")), 0.0),
        "pop_week_log": per_item(np.log1p(count("pop_week")), 0.0),
        "pop_3day_log": per_item(np.log1p(count("pop_3day")), 0.0),
        "user_item_repeat_log": np.log1p(repeats.astype(np.float64)),
        "user_events_log": _gather(np.log1p(user_events), user_at, 0.0),
        "user_days_since_last": (cutoff - last) / DAY,
        # Share of this item's all-time audience the user's activity level represents: a cheap
        # interaction of user activity and item popularity.
        "user_seen_share": events / (1.0 + per_item(pop_count, 0.0)),
    }
    if embedding is not None:
        signals["emb_score"] = embedding.pair_scores(users, items)
        ranks = (candidates["emb_rank"].to_numpy(dtype=np.float64) if "emb_rank" in candidates
                 else np.full(len(candidates), float(NO_RANK)))
        signals["emb_rank_log"] = np.log1p(ranks)
    base = candidates.reset_index(drop=True)
    # copy=False: the arrays are fresh, so the frame takes them as they are (no 2-D block copy)
    return pd.concat([base, pd.DataFrame(signals, index=base.index, copy=False)], axis=1)


def _gather(values: np.ndarray, at: np.ndarray, missing: float) -> np.ndarray:
    """``values[at]``, with ``missing`` where ``at`` is -1 (not found; the result is float)."""
    if len(at) == 0 or (at >= 0).all():
        return values[at] if len(values) else np.full(len(at), missing)
    out = np.full(len(at), missing, dtype=np.result_type(values.dtype, np.float64))
    found = at >= 0
    out[found] = values[at[found]]
    return out


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
    """The float32 matrix the ranker reads, columns in the model's saved order.

    Filled column by column into a (columns x rows) buffer and returned transposed: no
    intermediate frame of the selected columns (``rows[columns]`` copies every block first).
    The Fortran-ordered result is what XGBoost's ``inplace_predict`` reads fastest, copy included.
    """
    out = np.empty((len(columns), len(rows)), dtype=np.float32)
    for j, column in enumerate(columns):
        out[j] = rows[column].to_numpy(dtype=np.float32, na_value=np.nan)
    return out.T
