"""Popularity baselines: everyone gets the most interacted-with items, counted over all time
(``global``) or over the recent window the candidate generator uses (``recent``: recent count,
then all-time count, then id, i.e. the ``pop_rank`` order)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluate.baselines.common import ItemScorer
from pipeline.io import ITEM


def popularity_scorer(popular: pd.DataFrame, window: str) -> ItemScorer:
    """``popular``: ``fit_popularity(...).items`` as of the cutoff."""
    if window == "global":
        ordered = popular.sort_values(["pop_count", ITEM], ascending=[False, True],
                                      kind="stable")
        weights = ordered["pop_count"].to_numpy(dtype=np.float32)
    elif window == "recent":
        ordered = popular.sort_values("pop_rank", kind="stable")
        weights = -ordered["pop_rank"].to_numpy(dtype=np.float32)
    else:
        raise ValueError(f"popularity window must be 'global' or 'recent', not {window!r}")
    name = "popularity" if window == "recent" else "popularity_global"
    return ItemScorer(name, ordered[ITEM].to_numpy(), "vector", weights)
