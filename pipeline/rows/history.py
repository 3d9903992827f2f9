"""What a user's own history says about each candidate: how often and how recently they had it.

Recency is counted in the user's own sessions (distinct active days), not in days before the
cutoff: the item they bought in their last basket is "0 sessions ago" whether that basket was
yesterday or a year before the night, so the signal means the same for a user who comes back
after a long pause (a held-out "next basket" long after the last one) as for a regular. The
decayed count weighs each session holding the item by ``SESSION_DECAY`` per session since
(personal frequency with a time decay, as in TIFU-KNN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.candidates.filters import pair_keys
from pipeline.io import DAY, ITEM, TIME, USER

SESSION_DECAY = 0.8


@dataclass(frozen=True, eq=False)
class PairHistory:
    """Per (user, item) of a history: events, sessions holding it, the sessions since the
    latest one, the decayed session count and the last event time; per user: sessions."""

    pairs: pd.DataFrame  # user_id, item_id, count, sessions, sessions_ago, decayed, last
    user_sessions: pd.Series  # sessions per user, indexed by user id

    def lookup(self, users: np.ndarray, items: np.ndarray) -> pd.DataFrame:
        """The pair columns for each (users[i], items[i]) row: zeros (NaN for recency) for
        pairs the user never had."""
        at = _pair_index(self.pairs[USER].to_numpy(), self.pairs[ITEM].to_numpy(), users, items)
        found = at >= 0
        out = {}
        for column, missing in (("count", 0.0), ("sessions", 0.0), ("decayed", 0.0),
                                ("sessions_ago", np.nan), ("last", np.nan)):
            values = np.full(len(users), missing, dtype=np.float64)
            values[found] = self.pairs[column].to_numpy(dtype=np.float64)[at[found]]
            out[column] = values
        return pd.DataFrame(out)


def pair_history(history: pd.DataFrame) -> PairHistory:
    """Summarise ``history`` (``user_id, item_id, timestamp``) per (user, item)."""
    day = (history[TIME].to_numpy() // DAY).astype(np.int64)
    frame = pd.DataFrame({USER: history[USER].to_numpy(), ITEM: history[ITEM].to_numpy(),
                          "day": day, TIME: history[TIME].to_numpy()})
    # 0 for the user's latest active day, 1 for the one before, ...
    frame["ago"] = frame.groupby(USER, sort=False)["day"].rank(method="dense",
                                                               ascending=False) - 1
    per_session = frame.drop_duplicates([USER, ITEM, "day"])
    sessions = per_session.groupby([USER, ITEM], sort=False).agg(
        sessions=("day", "size"), sessions_ago=("ago", "min"))
    sessions["decayed"] = (SESSION_DECAY ** per_session["ago"]).groupby(
        [per_session[USER], per_session[ITEM]], sort=False).sum()
    counts = frame.groupby([USER, ITEM], sort=False).agg(count=(TIME, "size"),
                                                         last=(TIME, "max"))
    pairs = counts.join(sessions).reset_index()
    user_sessions = frame.groupby(USER, sort=False)["ago"].max() + 1
    return PairHistory(pairs, user_sessions)


def _pair_index(left_users: np.ndarray, left_items: np.ndarray, users: np.ndarray,
                items: np.ndarray) -> np.ndarray:
    """For each probe (users[i], items[i]), its row in the unique pairs ``left`` (-1 if
    absent): one int64 key per pair when the ids are small integers, else a MultiIndex."""
    left = pair_keys(left_users, left_items)
    probe = pair_keys(users, items)
    if left is not None and probe is not None:
        order = np.argsort(left, kind="stable")
        keys = left[order]
        if len(keys) == 0:
            return np.full(len(users), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
        return np.where(keys[at] == probe, order[at], -1)
    index = pd.MultiIndex.from_arrays([left_users, left_items])
    return index.get_indexer(pd.MultiIndex.from_arrays([users, items]))
