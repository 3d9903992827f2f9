"""Item popularity as of a cutoff: the popularity candidate generator, the fallback list for
unknown users, the honest baseline, and two ranker features, from one distributed count."""

from __future__ import annotations

from dataclasses import dataclass

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.io import DAY, ITEM, TIME


@dataclass(frozen=True)
class Popularity:
    """``items``: one row per item seen before the cutoff, most popular first, with ``pop_count``
    (all time), ``pop_recent`` (the last ``recent_days``), ``pop_rank`` (1-based), ``pop_week``
    (the last 7 days), ``pop_3day`` (the last 3 days), ``item_age_days`` (since the item's first
    event: new releases trend) and ``item_idle_days`` (since its latest event: fading items)."""

    items: pd.DataFrame

    def top(self, n: int) -> pd.DataFrame:
        return self.items.head(n)


def fit_popularity(events: dd.DataFrame, cutoff: int, recent_days: float) -> Popularity:
    """Count interactions per item before ``cutoff`` (epoch seconds); only counts reach the
    client."""
    history = events[events[TIME] < cutoff]
    recent = history[history[TIME] >= cutoff - int(recent_days * DAY)]
    week = history[history[TIME] >= cutoff - 7 * DAY]
    days3 = history[history[TIME] >= cutoff - 3 * DAY]
    total, latest, last_week, last_days3, seen = dask.compute(
        history[ITEM].value_counts(), recent[ITEM].value_counts(),
        week[ITEM].value_counts(), days3[ITEM].value_counts(),
        history.groupby(ITEM)[TIME].agg(["min", "max"]),
    )
    items = rank_items(total, latest)
    items["pop_week"] = last_week.reindex(items[ITEM]).fillna(0).to_numpy(dtype="int64")
    items["pop_3day"] = last_days3.reindex(items[ITEM]).fillna(0).to_numpy(dtype="int64")
    seen = seen.reindex(items[ITEM])
    items["item_age_days"] = (cutoff - seen["min"].to_numpy()) / DAY
    items["item_idle_days"] = (cutoff - seen["max"].to_numpy()) / DAY
    return Popularity(items)


def rank_items(total: pd.Series, recent: pd.Series) -> pd.DataFrame:
    """Order items by recent count, then all-time count, then id (deterministic ties)."""
    items = pd.DataFrame({"pop_count": total.astype("int64")})
    items["pop_recent"] = recent.reindex(items.index).fillna(0).astype("int64")
    items.index.name = ITEM
    items = items.reset_index().sort_values(
        ["pop_recent", "pop_count", ITEM], ascending=[False, False, True], kind="stable"
    )
    items["pop_rank"] = np.arange(1, len(items) + 1, dtype="int64")
    return items.reset_index(drop=True)
