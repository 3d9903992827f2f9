"""The one-line baselines as rankers of the night's own candidate rows: each orders a user's
candidates by one signal (EASE^R's score, popularity, the user's own past counts, ...).

Why rank the same candidates rather than the whole catalogue: the evaluate stage then measures
exactly the lists the night would publish if a baseline won (same filter, same business rules,
same fallback), and each generator's own best items are among its candidates, so the baseline's
top k is the generator's top k.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

SignalRanker = Callable[[pd.DataFrame], np.ndarray]


def _column(rows: pd.DataFrame, name: str, missing: float) -> np.ndarray:
    values = rows[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(values), missing, values)


def _popularity(rows: pd.DataFrame) -> np.ndarray:
    """Recent popularity (the popularity generator's order; unranked items by all-time
    count)."""
    return -_column(rows, "pop_rank_log", np.inf) + 1e-6 * _column(rows, "pop_count_log", 0.0)


def _popularity_global(rows: pd.DataFrame) -> np.ndarray:
    return _column(rows, "pop_count_log", 0.0)


def _repeat(rows: pd.DataFrame) -> np.ndarray:
    """The user's own most frequent items, the most recent first among equals, then popular
    items for the rest of the list."""
    count = _column(rows, "user_item_count_log", 0.0)
    recency = 1.0 / (1.0 + _column(rows, "user_item_sessions_ago", np.inf))
    return count * 1e6 + recency * 1e3 + _popularity(rows) * 1e-3


def _by(name: str) -> SignalRanker:
    def rank(rows: pd.DataFrame) -> np.ndarray:
        return _column(rows, name, -np.inf) + 1e-9 * _popularity(rows)
    rank.__doc__ = f"Candidates by ``{name}`` (missing last), ties by popularity."
    return rank


SIGNAL_RANKERS: dict[str, SignalRanker] = {
    "popularity": _popularity,
    "popularity_global": _popularity_global,
    "repeat": _repeat,
    "ease": _by("ease_score"),
    "itemknn": _by("cooc_score"),  # the co-occurrence generator's summed cosines
    "embedding": _by("emb_score"),
}
# The signal each needs among the rows (a baseline whose generator is off cannot run).
REQUIRES = {"ease": "ease_score", "itemknn": "cooc_score", "embedding": "emb_score"}


def signal_scores(rows: pd.DataFrame, name: str) -> np.ndarray:
    """``name``'s score for every candidate row (higher is better), float32."""
    return SIGNAL_RANKERS[name](rows).astype(np.float32)
