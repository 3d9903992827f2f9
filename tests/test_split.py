"""The night's split: holdouts and label windows by share of the interactions or by days, and
as many windows as the queries need."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import SplitSpec
from pipeline.errors import ConfigError
from pipeline.split import HOUR, plan_split, window_bounds

DAY = 86_400


def hourly(counts_per_day: list[int]) -> pd.Series:
    """Events per hour: each day's events in its first hour."""
    return pd.Series(counts_per_day, index=np.arange(len(counts_per_day)) * 24)


def test_by_fraction_each_window_holds_the_holdouts_share() -> None:
    counts = [10] * 100  # 1,000 events over 100 days
    spec = SplitSpec(holdout_fraction=0.1, label_windows=3)
    bounds = window_bounds(spec, hourly(counts), first=0, last=100 * DAY - 1)
    assert bounds == [90 * DAY, 80 * DAY, 70 * DAY, 60 * DAY]  # 100 events after each bound


def test_by_fraction_follows_the_logs_pace_not_the_calendar() -> None:
    counts = [1] * 90 + [100] * 10  # a quiet start, then a busy last ten days
    bounds = window_bounds(SplitSpec(holdout_fraction=0.1, label_windows=2), hourly(counts),
                           first=0, last=100 * DAY - 1)
    assert bounds[0] == 98 * DAY  # the last two days hold 10% of the 1,090 events
    assert bounds[1] == 97 * DAY  # three days hold 20%: calendar days would say 80 and 90


def test_by_days_as_before() -> None:
    spec = SplitSpec(holdout_days=14, label_days=7, label_windows=2)
    last = 100 * DAY - 1
    assert window_bounds(spec, hourly([10] * 100), 0, last) == [86 * DAY, 79 * DAY, 72 * DAY]


def test_auto_takes_windows_until_they_hold_enough_users() -> None:
    spec = SplitSpec(holdout_fraction=0.1, min_training_users=100, max_label_windows=5)
    bounds = window_bounds(spec, hourly([10] * 100), 0, 100 * DAY - 1)
    assert len(bounds) == 1 + 5  # the holdout and at most five windows
    split = plan_split(spec, bounds, [40, 40, 40, 40, 40], 0, 100 * DAY - 1)
    assert split["label_starts"] == bounds[1:4]  # 40 + 40 + 40 >= 100
    assert split["label_start"] == bounds[3] and split["window_users"] == [40, 40, 40]
    few = plan_split(spec, bounds, [10] * 5, 0, 100 * DAY - 1)
    assert few["label_starts"] == bounds[1:]  # never enough: every window allowed


def test_auto_leaves_a_windows_share_of_history_before_the_oldest() -> None:
    spec = SplitSpec(holdout_fraction=0.2, max_label_windows=12)
    bounds = window_bounds(spec, hourly([10] * 100), 0, 100 * DAY - 1)
    assert bounds[-1] >= 20 * DAY  # 20% of the log before the oldest window


def test_the_short_horizon_is_the_holdouts_first_days() -> None:
    spec = SplitSpec(holdout_fraction=0.1, label_windows=1, short_days=3)
    bounds = window_bounds(spec, hourly([10] * 100), 0, 100 * DAY - 1)
    split = plan_split(spec, bounds, [5], 0, 100 * DAY - 1)
    assert split["short_end"] == split["holdout_start"] + 3 * DAY


def test_a_log_too_short_for_the_split_says_what_to_lower() -> None:
    with pytest.raises(ConfigError, match="lower split.label_windows"):
        window_bounds(SplitSpec(holdout_days=5, label_windows=3), hourly([10] * 10), 0,
                      10 * DAY - 1)
    with pytest.raises(ValueError, match="give split.holdout_fraction or split.holdout_days"):
        SplitSpec(holdout_fraction=0.1, holdout_days=3)


def test_bounds_fall_on_whole_hours() -> None:
    counts = pd.Series([3, 5, 7, 9], index=[1000, 1001, 1005, 1010])
    bounds = window_bounds(SplitSpec(holdout_fraction=0.3, label_windows=1), counts,
                           first=1000 * HOUR, last=1010 * HOUR + 5)
    assert all(b % HOUR == 0 for b in bounds)
