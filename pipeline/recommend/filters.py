"""Stage 2, filter: drop candidates the user has already interacted with."""

from __future__ import annotations

import pandas as pd

from pipeline.io import ITEM, USER


def drop_seen(candidates: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Anti-join on (user_id, item_id): keep candidates absent from the user's history."""
    seen = history[[USER, ITEM]].drop_duplicates()
    flagged = candidates.merge(seen.assign(_seen=True), on=[USER, ITEM], how="left")
    keep = flagged["_seen"].isna().to_numpy()
    return flagged.loc[keep, candidates.columns].reset_index(drop=True)
