"""Retrieval recall per generator on a hand-made partition: given this history and holdout,
expect these shares of each user's future items among each generator's candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.candidates.context import NightContext
from pipeline.config import CandidatesSpec
from pipeline.evaluate.retrieval_recall import recall_partition


def test_recall_per_generator_and_merged() -> None:
    cutoff = 100
    events = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 2, 3],
        "item_id": [10, 20, 30, 40, 20, 50, 10],
        "timestamp": [5, 6, 100, 101, 7, 102, 8],  # user 3 has no holdout events
    })
    popular = pd.DataFrame({"item_id": [30, 10, 50], "pop_rank": [1, 2, 3]})
    neighbours = pd.DataFrame({"item_id": [10, 20], "neighbor_id": [40, 50],
                               "cooc_score": np.float32([0.5, 0.5])})
    spec = CandidatesSpec.model_validate({"popularity": {"n": 1}, "cooccurrence": {"n": 5},
                                          "repeat": {"n": 5}})
    ctx = NightContext(cutoff=cutoff, popular=popular, neighbours=neighbours, users=None,
                       items=None, workflow_dir="", candidates=spec, exclude_seen=False, k=5)
    row = recall_partition(events, ctx, window_end=200).iloc[0]
    # user 1 will take {30, 40}: popularity proposes 30, co-occurrence 40 (from 10), 50 (from
    # 20); user 2 will take {50}: popularity proposes 30, co-occurrence 50 (from 20).
    assert row["users"] == 2
    assert row["recall.popularity"] == 0.5
    assert row["recall.cooccurrence"] == 0.5 + 1.0
    assert row["recall.repeat"] == 0.0
    assert row["recall.merged"] == 1.0 + 1.0
    assert row["candidates.repeat"] == 3  # user 1: 10, 20; user 2: 20
