"""The night's temporal split, fixed once in the prepare stage from the log itself.

By fraction (the default), the holdout is the last share of the interactions and each label
window before it holds as many, so the ranker learns to predict the horizon it is judged on
whatever the log's pace: a fortnight of a busy shop or two years of a film site. Window bounds
fall on whole hours, found from the log's per-hour counts (a small table, whatever the log's
size). By days, the holdout and the windows are fixed lengths.

How many windows: a fixed number, or (``auto``) as many as it takes for the windows to hold
``min_training_users`` queries (users with history and a relevant interaction in the window),
at most ``max_label_windows``, always leaving a window's worth of history before the oldest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config import SplitSpec
from pipeline.errors import ConfigError
from pipeline.io import DAY

HOUR = 3600


def window_bounds(spec: SplitSpec, hourly: pd.Series, first: int, last: int) -> list[int]:
    """The holdout's start, then every label window's start that ``spec`` allows (newest
    first): each leaves at least one window's worth of history before it."""
    end = int(last) + 1
    most = spec.label_windows if spec.label_windows != "auto" else spec.max_label_windows
    if spec.by_fraction:
        bounds = _bounds_by_share(hourly, [spec.fraction * (i + 1) for i in range(most + 1)])
        # a window's share of the log stays as history before the oldest window
        oldest_allowed = _bounds_by_share(hourly, [1.0 - spec.fraction])[0]
    else:
        holdout = int(spec.holdout_days * DAY)
        window = int((spec.label_days or spec.holdout_days) * DAY)
        bounds = [end - holdout - window * w for w in range(most + 1)]
        oldest_allowed = int(first) + window
    holdout_start = bounds[0]
    starts = [b for b in bounds[1:] if b >= oldest_allowed and b < holdout_start]
    starts = [b for i, b in enumerate(starts) if i == 0 or b < starts[i - 1]]
    if not starts or holdout_start >= end or (spec.label_windows != "auto"
                                              and len(starts) < spec.label_windows):
        span = (int(last) - int(first)) / DAY
        wanted = spec.label_windows if spec.label_windows != "auto" else 1
        raise ConfigError(
            f"split: the log spans {span:.1f} days ({int(hourly.sum())} events), too short for a "
            f"holdout plus {wanted} label window(s) of the same size and the history before "
            "them; lower split.label_windows or split.holdout_fraction (or split.holdout_days)")
    return [holdout_start, *starts]


def plan_split(spec: SplitSpec, bounds: list[int], window_users: list[int], first: int,
               last: int) -> dict[str, object]:
    """The split times from ``window_bounds`` and the queries each window holds: the holdout's
    start, the chosen label windows' starts (newest first; ``label_start`` is the oldest),
    ``short_end`` (the short evaluation horizon) and the log's first and last event."""
    holdout_start, starts = bounds[0], bounds[1:]
    if spec.label_windows == "auto":
        total = np.cumsum(window_users)
        enough = np.flatnonzero(total >= spec.min_training_users)
        count = int(enough[0]) + 1 if len(enough) else len(starts)
    else:
        count = spec.label_windows
    chosen = starts[:count]
    return {"first_event": int(first), "last_event": int(last), "holdout_start": holdout_start,
            "label_starts": chosen, "label_start": chosen[-1],
            "window_users": [int(u) for u in window_users[:count]],
            "short_end": min(holdout_start + int(spec.short_days * DAY), int(last) + 1),
            "by": "fraction" if spec.by_fraction else "days"}


def _bounds_by_share(hourly: pd.Series, shares: list[float]) -> list[int]:
    """For each share, the latest hour boundary with at least that share of the events at or
    after it."""
    hours = hourly.sort_index()
    tail = np.cumsum(hours.to_numpy()[::-1])[::-1]  # events at or after each hour
    total = float(tail[0]) if len(tail) else 0.0
    starts = hours.index.to_numpy(dtype=np.int64)
    bounds = []
    for share in shares:
        at = np.flatnonzero(tail >= share * total * (1 - 1e-12))  # 0.3 x 1000 is 300.0000...1
        bounds.append(int(starts[at[-1]]) * HOUR if len(at) else int(starts[0]) * HOUR)
    return bounds
