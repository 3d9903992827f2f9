"""Item popularity as of a cutoff: the popularity candidate generator, the fallback list for
unknown users, the honest baseline, and two ranker features, from one distributed count."""

from __future__ import annotations

from dataclasses import dataclass

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.io import DAY, ITEM, TIME, USER


@dataclass(frozen=True)
class Popularity:
    """``items``: one row per item seen before the cutoff, most popular first, with ``pop_count``
    (all time), ``pop_recent`` (the last ``recent_days``), ``pop_rank`` (1-based), ``pop_week``
    (the last 7 days), ``pop_3day`` (the last 3 days), ``item_age_days`` (since the item's first
    event: new releases trend), ``item_idle_days`` (since its latest event: fading items),
    ``pop_users`` (distinct users) and ``item_repeat_rate`` (the share of them who came back)."""

    items: pd.DataFrame

    def top(self, n: int) -> pd.DataFrame:
        return self.items.head(n)


def fit_popularity(events: dd.DataFrame, cutoff: int, recent_days: float) -> Popularity:
    """Per-item counts before ``cutoff`` (epoch seconds) in one pass over the user-partitioned
    log: each partition counts its own rows (a user's repeats all sit in one partition, so the
    repeat counts are exact) and only the per-item sums reach the client."""
    history = events[events[TIME] < cutoff][[USER, ITEM, TIME]]
    starts = {"pop_recent": cutoff - int(recent_days * DAY), "pop_week": cutoff - 7 * DAY,
              "pop_3day": cutoff - 3 * DAY}
    meta = _item_counts(history._meta, starts)
    parts = history.map_partitions(_item_counts, starts, meta=meta)
    sums = parts.groupby(ITEM).agg({**{c: "sum" for c in _SUMMED}, "first": "min",
                                    "last": "max"}).compute()
    items = rank_items(sums["pop_count"], sums["pop_recent"])
    stats = sums.reindex(items[ITEM])
    items["pop_week"] = stats["pop_week"].to_numpy(dtype="int64")
    items["pop_3day"] = stats["pop_3day"].to_numpy(dtype="int64")
    items["item_age_days"] = (cutoff - stats["first"].to_numpy()) / DAY
    items["item_idle_days"] = (cutoff - stats["last"].to_numpy()) / DAY
    users = stats["pop_users"].to_numpy(dtype=np.float64)
    items["pop_users"] = users.astype("int64")
    # Share of the item's users who came back to it: how much a seen item is still a candidate.
    items["item_repeat_rate"] = stats["repeaters"].to_numpy(dtype=np.float64) / np.maximum(
        users, 1.0)
    return Popularity(items)


_SUMMED = ("pop_count", "pop_recent", "pop_week", "pop_3day", "pop_users", "repeaters")


def _item_counts(part: pd.DataFrame, starts: dict[str, int]) -> pd.DataFrame:
    """One partition's per-item counts: all time, since each of ``starts``, distinct users, users
    with two or more events on the item, and the first and last event times."""
    times = part[TIME]
    frame = pd.DataFrame({ITEM: part[ITEM], "pop_count": np.ones(len(part), dtype=np.int64),
                          **{name: (times >= start).to_numpy(dtype=np.int64)
                             for name, start in starts.items()},
                          "first": times, "last": times})
    counts = frame.groupby(ITEM).agg({"pop_count": "sum", **{n: "sum" for n in starts},
                                      "first": "min", "last": "max"})
    per_pair = part.groupby([ITEM, USER], sort=False).size()
    pairs = pd.DataFrame({"pop_users": np.ones(len(per_pair), dtype=np.int64),
                          "repeaters": (per_pair.to_numpy() > 1).astype(np.int64)},
                         index=per_pair.index.get_level_values(0))
    counts[["pop_users", "repeaters"]] = pairs.groupby(level=0).sum().reindex(
        counts.index).to_numpy()
    return counts.reset_index()[[ITEM, *_SUMMED, "first", "last"]]


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
