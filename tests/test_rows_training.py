"""Training rows: graded labels from the window, every positive kept, negatives capped per
query, queries without a positive dropped, query ids in order across partitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.candidates.context import NightContext
from pipeline.config import CandidatesSpec, TrainingRowsSpec
from pipeline.features import Categorify, Workflow
from pipeline.rows.build import (
    QIDS_PER_PARTITION,
    LabelWindows,
    _sampled,
    training_partition,
    window_labels,
)
from pipeline.rows.signals import signal_features

DAY = 86_400


def test_labels_grade_the_next_session_above_later_and_weak_interactions() -> None:
    rows = pd.DataFrame({"user_id": [1, 1, 1, 1, 2], "item_id": [10, 11, 12, 13, 10]})
    window = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [10, 11, 12, 10],
                           "timestamp": [5 * DAY, 9 * DAY, 5 * DAY + 60, 7 * DAY],
                           "relevant": np.int8([1, 1, 0, 1])})
    # user 1: item 10 relevant on their first day back, 11 relevant later, 12 rated low
    assert window_labels(rows, window, "relevant").tolist() == [3, 2, 1, 0, 3]


def test_sampling_keeps_positives_caps_negatives_and_drops_empty_queries() -> None:
    users = np.repeat(np.arange(4), 50)
    items = np.tile(np.arange(50), 4)
    label = np.zeros(200, dtype=bool)
    label[[0, 1, 60]] = True  # user 0: two positives, user 1: one, users 2-3: none
    spec = TrainingRowsSpec(negatives_per_positive=5, min_negatives=8)
    keep = _sampled(users, items, label, spec, seed=0)
    per_user = pd.Series(keep).groupby(users).sum().tolist()
    assert per_user == [2 + 10, 1 + 8, 0, 0]
    assert keep[label].all()
    other = _sampled(users, items, label, spec, seed=1)
    assert (other != keep).any() and pd.Series(other).groupby(users).sum().tolist() == per_user


@pytest.fixture
def windows(tmp_path: Path) -> tuple[pd.DataFrame, LabelWindows]:
    rng = np.random.default_rng(0)
    n = 3000
    events = pd.DataFrame({"user_id": rng.integers(0, 60, n), "item_id": rng.integers(0, 40, n),
                           "timestamp": rng.integers(0, 100 * DAY, n), "relevant": np.int8(1)})
    popular = events.groupby("item_id").size().rename("pop_count").reset_index()
    popular = popular.sort_values("pop_count", ascending=False).reset_index(drop=True)
    popular["pop_rank"] = np.arange(1, len(popular) + 1)
    for column in ("pop_recent", "pop_week", "pop_3day", "pop_users", "item_age_days",
                   "item_idle_days", "item_repeat_rate"):
        popular[column] = 1.0
    spec = CandidatesSpec.model_validate({"popularity": {"n": 20}, "cooccurrence": None,
                                          "ease": None, "repeat": None})
    Workflow([Categorify(["item_id"])]).fit(events).save(tmp_path / "wf")  # as the night builds it
    features = signal_features(spec, repeat_on=False) + ["item_id"]
    contexts = tuple(NightContext(cutoff=c * DAY, popular=popular, neighbors=None, users=None,
                                  items=None, workflow_dir=str(tmp_path / "wf"),
                                  candidates=spec, exclude_seen=True, k=10)
                     for c in (80, 60))
    return events, LabelWindows(contexts, (100 * DAY, 80 * DAY), (1.0, 1.0), tuple(features),
                                "relevant", TrainingRowsSpec(), seed=0,
                                validation_fraction=0.25)


def test_rows_of_every_window_in_qid_order(windows: tuple[pd.DataFrame, LabelWindows]) -> None:
    events, label_windows = windows
    out = training_partition(events, label_windows, partition_info={"number": 3})
    qid = out["qid"].to_numpy()
    assert (np.diff(qid) >= 0).all()  # sorted: XGBoost needs no re-sort
    assert qid.min() >= 3 * QIDS_PER_PARTITION and qid.max() < 4 * QIDS_PER_PARTITION
    assert set(out.columns) == {*label_windows.features, "label", "user_key", "is_valid", "qid"}
    positives = out.groupby("qid")["label"].apply(lambda s: (s > 0).sum())
    assert (positives > 0).all()  # a query without a positive teaches nothing
    assert out.groupby("user_key")["is_valid"].nunique().max() == 1  # a user on one side
    assert out["qid"].nunique() > 60  # two windows: most users twice
    empty = training_partition(events.iloc[:0], label_windows)
    assert list(empty.columns) == list(out.columns) and len(empty) == 0
