"""Ranker input rows: (user, candidate) pairs with every generator's score and rank, the item's
popularity and trend, the user's activity, and how often and how recently the user already had
the item; then the side tables. The same code at training and at serving time (train/serve
parity), always from the history before the cutoff.

Per-item and per-user values are computed once on the small item and user tables and gathered to
the candidate rows by position; the frame is built once at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.candidates.context import NightContext
from pipeline.candidates.generators import NO_RANK, RANK_COLUMNS
from pipeline.candidates.retrieve import Retrieved
from pipeline.config import CandidatesSpec
from pipeline.io import DAY, ITEM, TIME, USER
from pipeline.rows.history import pair_history

# Every candidate, whichever generator proposed it.
BASE_SIGNALS = [
    "pop_rank_log",
    "pop_count_log",
    "pop_recent_log",
    "pop_week_log",
    "pop_3day_log",
    "pop_users_log",
    "item_age_days",
    "item_idle_days",
    "item_repeat_rate",
    "user_events_log",
    "user_items_log",
    "user_days_since_last",
    "user_repeat_share",
    "user_seen_share",
    "user_sessions_log",
    "user_item_count_log",
    "user_item_share",
    "user_item_sessions_ago",
    "user_item_session_share",
    "user_item_decayed",
    "user_item_days_before_last",
]
GENERATOR_SIGNALS = {
    "cooccurrence": ["cooc_score", "cooc_rank_log"],
    "ease": ["ease_score", "ease_rank_log"],
    "repeat": ["repeat_rank_log"],
    "embedding": ["emb_score", "emb_rank_log"],
}


def signal_features(spec: CandidatesSpec, repeat_on: bool) -> list[str]:
    """The signal columns ``add_signals`` writes for this candidate configuration."""
    names = list(BASE_SIGNALS)
    for generator, columns in GENERATOR_SIGNALS.items():
        on = repeat_on if generator == "repeat" else getattr(spec, generator) is not None
        if on:
            names += columns
    return names


def add_signals(retrieved: Retrieved, rows: pd.DataFrame, history: pd.DataFrame,
                ctx: NightContext) -> pd.DataFrame:
    """``rows`` (filtered candidates of ``retrieved``) with ``signal_features`` added."""
    popular, cutoff = ctx.popular, ctx.cutoff
    items, users = rows[ITEM].to_numpy(), rows[USER].to_numpy()
    item_at = pd.Index(popular[ITEM].to_numpy()).get_indexer(items)

    def per_item(column: str, missing: float, log: bool = False) -> np.ndarray:
        values = popular[column].to_numpy(dtype=np.float64)
        return _gather(np.log1p(values) if log else values, item_at, missing)

    activity = history.groupby(USER).agg(events=(ITEM, "size"), items=(ITEM, "nunique"),
                                         last=(TIME, "max"))
    user_at = activity.index.get_indexer(users)
    user_events = activity["events"].to_numpy(dtype=np.float64)
    distinct = activity["items"].to_numpy(dtype=np.float64)
    events = _gather(user_events, user_at, 0.0)
    user_last = _gather(activity["last"].to_numpy(dtype=np.float64), user_at, np.nan)
    own = pair_history(history)
    pairs = own.lookup(users, items)
    sessions = _gather(own.user_sessions.reindex(activity.index).to_numpy(dtype=np.float64),
                       user_at, 0.0)
    signals = {
        "pop_count_log": per_item("pop_count", 0.0, log=True),
        "pop_recent_log": per_item("pop_recent", 0.0, log=True),
        "pop_week_log": per_item("pop_week", 0.0, log=True),
        "pop_3day_log": per_item("pop_3day", 0.0, log=True),
        "pop_users_log": per_item("pop_users", 0.0, log=True),
        "item_age_days": per_item("item_age_days", np.nan),
        "item_idle_days": per_item("item_idle_days", np.nan),
        "item_repeat_rate": per_item("item_repeat_rate", np.nan),
        "user_events_log": np.log1p(events),
        "user_items_log": _gather(np.log1p(distinct), user_at, 0.0),
        "user_days_since_last": (cutoff - user_last) / DAY,
        # Share of the user's events that went back to an item they had already had.
        "user_repeat_share": _gather(1.0 - distinct / np.maximum(user_events, 1.0), user_at,
                                     np.nan),
        # The user's activity against the item's all-time audience: a cheap interaction term.
        "user_seen_share": events / (1.0 + per_item("pop_count", 0.0)),
        "user_sessions_log": np.log1p(sessions),
        "user_item_count_log": np.log1p(pairs["count"].to_numpy()),
        "user_item_share": pairs["count"].to_numpy() / np.maximum(events, 1.0),
        "user_item_sessions_ago": pairs["sessions_ago"].to_numpy(),
        "user_item_session_share": pairs["sessions"].to_numpy() / np.maximum(sessions, 1.0),
        "user_item_decayed": pairs["decayed"].to_numpy(),
        "user_item_days_before_last": (user_last - pairs["last"].to_numpy()) / DAY,
    }
    for column in RANK_COLUMNS.values():
        if column in rows:
            signals[f"{column}_log"] = np.log1p(rows[column].to_numpy(dtype=np.float64))
    for name, table in (("cooc_score", retrieved.cooccurrence), ("ease_score", retrieved.ease),
                        ("emb_score", retrieved.embedding)):
        if table is not None:
            signals[name] = table.pair_scores(users, items)
    # A configured generator with nothing to go on (no history yet) still gives its columns.
    for name in signal_features(ctx.candidates, ctx.repeat_on):
        if name not in signals:
            missing = np.log1p(NO_RANK) if name.endswith("_rank_log") else (
                0.0 if name == "cooc_score" else np.nan)
            signals[name] = np.full(len(rows), missing, dtype=np.float64)
    base = rows.reset_index(drop=True)
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
    The Fortran-ordered result is what XGBoost's ``inplace_predict`` reads fastest.
    """
    out = np.empty((len(columns), len(rows)), dtype=np.float32)
    for j, column in enumerate(columns):
        out[j] = rows[column].to_numpy(dtype=np.float32, na_value=np.nan)
    return out.T
