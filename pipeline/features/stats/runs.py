"""Runs of equal values in a sorted array: the groups of every sort-based statistic (value
counts, target statistics, group moments, quantile summaries) and of their merges."""

from __future__ import annotations

import numpy as np


def run_start_mask(values: np.ndarray) -> np.ndarray:
    """True where a sorted (or grouped) array starts a run of equal values."""
    return np.r_[True, values[1:] != values[:-1]] if len(values) else np.zeros(0, dtype=bool)
