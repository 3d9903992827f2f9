"""The holdout pass on a hand-made partition: given this history and holdout, expect these
shares of each user's future items among each generator's candidates, and these metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.candidates.context import NightContext
from pipeline.config import CandidatesSpec
from pipeline.evaluate.holdout import HoldoutPlan, holdout_partition, per_user_metrics
from pipeline.features import Categorify, Workflow


def test_per_user_metrics_by_hand() -> None:
    top = pd.DataFrame({"user_id": [1, 1, 1, 2], "rank": [1, 2, 3, 1], "item_id": [5, 6, 7, 9]})
    truth = pd.DataFrame({"user_id": [1, 1, 3], "item_id": [6, 8, 1]})
    got = per_user_metrics(top, truth, k=3)
    assert got.index.tolist() == [1, 3]  # users of the truth; user 2 has no future item
    ideal = 1 + 1 / np.log2(3)
    assert got.loc[1, "ndcg"] == pytest.approx((1 / np.log2(3)) / ideal)
    assert got.loc[1, "recall"] == 0.5 and got.loc[1, "map"] == pytest.approx(0.5 / 2)
    assert got.loc[3].tolist() == [0.0, 0.0, 0.0]  # no list: zero


def test_recall_per_generator_and_merged(tmp_path: Path) -> None:
    cutoff = 100
    events = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 2, 3],
        "item_id": [10, 20, 30, 40, 20, 50, 10],
        "timestamp": [5, 6, 100, 101, 7, 102, 8],  # user 3 has no holdout events
        "relevant": np.int8(1),
    })
    popular = pd.DataFrame({"item_id": [30, 10, 50], "pop_rank": [1, 2, 3]})
    for column in ("pop_count", "pop_recent", "pop_week", "pop_3day", "pop_users",
                   "item_age_days", "item_idle_days", "item_repeat_rate"):
        popular[column] = [3.0, 2.0, 1.0]
    neighbors = pd.DataFrame({"item_id": [10, 20], "neighbor_id": [40, 50],
                               "cooc_score": np.float32([0.5, 0.5])})
    spec = CandidatesSpec.model_validate({"popularity": {"n": 1}, "cooccurrence": {"n": 5},
                                          "repeat": {"n": 5}, "ease": None})
    Workflow(["item_id"] >> Categorify(None)).fit(events).save(tmp_path / "wf")
    ctx = NightContext(cutoff=cutoff, popular=popular, neighbors=neighbors, users=None,
                       items=None, workflow_dir=str(tmp_path / "wf"), candidates=spec,
                       exclude_seen=False, k=5)
    plan = HoldoutPlan({"popularity": None, "itemknn": None}, short_end=101, long_end=200,
                       relevant="relevant", k=5)
    out = holdout_partition(events, ctx, plan)
    # user 1 will take {30, 40}: popularity proposes 30, co-occurrence 40 (from 10), 50 (from
    # 20); user 2 will take {50}: popularity proposes 30, co-occurrence 50 (from 20).
    assert out["users"] == {"short": 1, "long": 2}
    assert out["recall"]["popularity"] == 0.5
    assert out["recall"]["cooccurrence"] == 0.5 + 1.0
    assert out["recall"]["repeat"] == 0.0
    assert out["recall"]["merged"] == 1.0 + 1.0
    assert out["candidates"]["repeat"] == 3  # user 1: 10, 20; user 2: 20
    assert out["metrics"]["itemknn"]["long"]["users"] == 2
    assert len(out["per_user"]["popularity"]) == 2  # one per long-horizon user, paired
