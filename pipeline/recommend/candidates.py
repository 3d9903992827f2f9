"""Stage 1, retrieve: candidate items per user from several generators, merged, de-duplicated,
each row keeping which generator(s) proposed it. Runs on one partition of users (pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.io import ITEM, TIME, USER

SOURCE_POPULARITY = "popularity"
SOURCE_COOCCURRENCE = "cooccurrence"
NO_RANK = 1_000_000  # rank given to a candidate a generator did not propose


def popularity_candidates(users: np.ndarray, popular: pd.DataFrame, n: int) -> pd.DataFrame:
    """Every user gets the ``n`` most popular items: ``(user_id, item_id, pop_rank)``."""
    top = popular.head(n)
    return pd.DataFrame(
        {
            USER: np.repeat(users, len(top)),
            ITEM: np.tile(top[ITEM].to_numpy(), len(users)),
            "pop_rank": np.tile(top["pop_rank"].to_numpy(), len(users)),
        }
    )


def cooccurrence_candidates(
    history: pd.DataFrame, neighbours: pd.DataFrame, recent_items: int, n: int
) -> pd.DataFrame:
    """Items that co-occur with the user's latest ``recent_items``, scored by summed cosine:
    ``(user_id, item_id, cooc_score, cooc_rank)``, at most ``n`` per user."""
    latest = history.sort_values([USER, TIME], ascending=[True, False], kind="stable")
    latest = latest.drop_duplicates([USER, ITEM]).groupby(USER, sort=False).head(recent_items)
    pairs = latest[[USER, ITEM]].merge(neighbours, on=ITEM, how="inner")
    scores = pairs.groupby([USER, "neighbor_id"], sort=False, as_index=False)["cooc_score"].sum()
    scores = scores.rename(columns={"neighbor_id": ITEM})
    scores = scores.sort_values([USER, "cooc_score", ITEM], ascending=[True, False, True])
    scores["cooc_rank"] = scores.groupby(USER, sort=False).cumcount() + 1
    return scores[scores["cooc_rank"] <= n].reset_index(drop=True)


def merge_candidates(by_popularity: pd.DataFrame, by_cooccurrence: pd.DataFrame) -> pd.DataFrame:
    """Outer-merge generators on (user, item); missing scores become neutral values and
    ``source`` names every generator that proposed the item."""
    merged = by_popularity.merge(by_cooccurrence, on=[USER, ITEM], how="outer")
    from_pop = merged["pop_rank"].notna().to_numpy()
    from_cooc = merged["cooc_rank"].notna().to_numpy()
    merged["pop_rank"] = merged["pop_rank"].fillna(NO_RANK).astype("int64")
    merged["cooc_rank"] = merged["cooc_rank"].fillna(NO_RANK).astype("int64")
    merged["cooc_score"] = merged["cooc_score"].fillna(0.0).astype("float32")
    source = np.where(from_pop & from_cooc, f"{SOURCE_POPULARITY}+{SOURCE_COOCCURRENCE}",
                      np.where(from_pop, SOURCE_POPULARITY, SOURCE_COOCCURRENCE))
    merged["source"] = pd.array(source, dtype="str")
    return merged
