"""The signal baselines order a user's candidates by one signal, as their generators would."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.rankers.signal import SIGNAL_RANKERS, signal_scores


def rows(**columns: list[float]) -> pd.DataFrame:
    base = {"pop_rank_log": np.log1p([3.0, 1.0, 2.0, 4.0]),
            "pop_count_log": np.log1p([5.0, 9.0, 1.0, 3.0]),
            "user_item_count_log": np.log1p([0.0, 0.0, 2.0, 2.0]),
            "user_item_sessions_ago": [np.nan, np.nan, 4.0, 1.0],
            "ease_score": [0.2, np.nan, 0.9, 0.1]}
    return pd.DataFrame({**base, **columns})


def order(name: str, frame: pd.DataFrame) -> list[int]:
    return np.argsort(-signal_scores(frame, name), kind="stable").tolist()


def test_popularity_follows_the_recent_rank_and_global_the_all_time_count() -> None:
    frame = rows()
    assert order("popularity", frame) == [1, 2, 0, 3]
    assert order("popularity_global", frame) == [1, 0, 3, 2]


def test_repeat_puts_the_users_own_items_first_most_recent_first_among_equals() -> None:
    assert order("repeat", rows()) == [3, 2, 1, 0]  # same count: 1 session ago before 4


def test_a_missing_score_ranks_last() -> None:
    assert order("ease", rows())[-1] == 1  # no EASE^R score (outside its catalogue)


def test_every_baseline_gives_one_float32_score_per_row() -> None:
    frame = rows(cooc_score=[0.0, 1.0, 0.5, 0.2], emb_score=[1.0, 2.0, 3.0, 4.0])
    for name in SIGNAL_RANKERS:
        scores = signal_scores(frame, name)
        assert scores.dtype == np.float32 and len(scores) == len(frame)
