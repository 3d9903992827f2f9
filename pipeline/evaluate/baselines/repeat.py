"""Repeat consumption: each user's own most frequent past items (ties: the most recent first).
Strong wherever people come back to the same items (groceries, music); near zero on MovieLens,
where a film is rated once. Ignores ``exclude_seen`` by design."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.candidates.retrieve import target_users
from pipeline.io import ITEM, TIME, USER


def repeat_partition(events: pd.DataFrame, cutoff: int, window_end: int | None,
                     k: int) -> pd.DataFrame:
    users = target_users(events, cutoff, window_end)
    history = events[(events[TIME] < cutoff) & events[USER].isin(users)]
    counts = history.groupby([USER, ITEM], as_index=False).agg(n=(TIME, "size"),
                                                                 last=(TIME, "max"))
    counts = counts.sort_values([USER, "n", "last", ITEM],
                                ascending=[True, False, False, True], kind="stable")
    top = counts.groupby(USER, sort=False).head(k)
    return pd.DataFrame({
        USER: top[USER].to_numpy(),
        "rank": top.groupby(USER, sort=False).cumcount().to_numpy().astype(np.int64) + 1,
        ITEM: top[ITEM].to_numpy(),
        "score": top["n"].to_numpy(dtype=np.float32),
    })


def repeat_lists(events: dd.DataFrame, cutoff: int, window_end: int | None,
                 k: int) -> dd.DataFrame:
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in events.dtypes.items()})
    return events.map_partitions(repeat_partition, cutoff, window_end, k,
                                 meta=repeat_partition(empty, cutoff, window_end, k))
