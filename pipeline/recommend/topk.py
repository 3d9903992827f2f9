"""Stage 4, keep the best k per user, and top short lists up from the popularity ranking so
every user gets a full list when the catalogue allows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.io import ITEM, USER

LIST_COLUMNS = [USER, "rank", ITEM, "score", "source"]
SOURCE_FALLBACK = "fallback"


def top_k(scored: pd.DataFrame, k: int) -> pd.DataFrame:
    """Best ``k`` rows per user by score (ties by item id), with 1-based ``rank``."""
    ordered = scored.sort_values([USER, "score", ITEM], ascending=[True, False, True],
                                 kind="stable")
    best = ordered.groupby(USER, sort=False).head(k).copy()
    best["rank"] = best.groupby(USER, sort=False).cumcount().to_numpy() + 1
    return best[LIST_COLUMNS].reset_index(drop=True)


def fill_short_lists(
    lists: pd.DataFrame, users: np.ndarray, popular: pd.DataFrame, seen: pd.DataFrame, k: int
) -> pd.DataFrame:
    """Append popular, unseen, not-yet-listed items to users with fewer than ``k`` rows.

    Only short lists are touched, so the cross product stays small in the normal case.
    """
    have = lists.groupby(USER).size().reindex(users, fill_value=0)
    short = have[have < k]
    if short.empty or popular.empty:
        return lists
    short_users = short.index.to_numpy()
    pool = pd.DataFrame(
        {
            USER: np.repeat(short_users, len(popular)),
            ITEM: np.tile(popular[ITEM].to_numpy(), len(short_users)),
            "pop_rank": np.tile(popular["pop_rank"].to_numpy(), len(short_users)),
        }
    )
    taken = pd.concat([seen[[USER, ITEM]], lists[[USER, ITEM]]]).drop_duplicates()
    pool = pool.merge(taken.assign(_taken=True), on=[USER, ITEM], how="left")
    pool = pool[pool["_taken"].isna()]
    pool["_need"] = k - short.reindex(pool[USER].to_numpy()).to_numpy()
    pool["_order"] = pool.groupby(USER, sort=False).cumcount()
    pool = pool[pool["_order"] < pool["_need"]]
    start = short.reindex(pool[USER].to_numpy()).to_numpy()
    extra = pd.DataFrame(
        {
            USER: pool[USER].to_numpy(),
            "rank": start + pool["_order"].to_numpy() + 1,
            ITEM: pool[ITEM].to_numpy(),
            "score": np.zeros(len(pool), dtype=np.float32),
            "source": pd.array([SOURCE_FALLBACK] * len(pool), dtype="str"),
        }
    )
    combined = pd.concat([lists, extra], ignore_index=True)
    return combined.sort_values([USER, "rank"], kind="stable").reset_index(drop=True)
