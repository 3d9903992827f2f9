"""Stage 2, filter: drop candidates the user has already interacted with (all time or in the
last N days), and the (user, item) membership test the other pair rules share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.io import DAY, ITEM, TIME, USER

_KEY_BITS = 31


def pair_keys(users: np.ndarray, items: np.ndarray) -> np.ndarray | None:
    """One int64 per (user, item) when both ids are small non-negative integers, else None."""
    if users.dtype.kind not in "iu" or items.dtype.kind not in "iu":
        return None
    if len(users) and (users.min() < 0 or users.max() >= 2**_KEY_BITS
                       or items.min() < 0 or items.max() >= 2**_KEY_BITS):
        return None
    return (users.astype(np.int64) << _KEY_BITS) | items.astype(np.int64)


def split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (users, items) that ``pair_keys`` packed."""
    return keys >> _KEY_BITS, keys & (2**_KEY_BITS - 1)


def pairs_isin(users: np.ndarray, items: np.ndarray, pairs: pd.DataFrame) -> np.ndarray:
    """For each (users[i], items[i]): is it a row of ``pairs`` (columns user_id, item_id)?

    Integer ids become one int64 key per pair, looked up in the sorted keys of ``pairs`` (no
    hash join on two columns); other id types fall back to a join.
    """
    return pair_counts(users, items, pairs) > 0


def pair_counts(users: np.ndarray, items: np.ndarray, pairs: pd.DataFrame) -> np.ndarray:
    """For each (users[i], items[i]): how many rows of ``pairs`` hold it (int64)."""
    return pair_stats(users, items, pairs)[0]


def pair_stats(users: np.ndarray, items: np.ndarray, pairs: pd.DataFrame,
               time: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """For each (users[i], items[i]): how many rows of ``pairs`` hold it (int64) and, with
    ``time``, the latest of their ``time`` values (NaN where none).

    Integer ids: the sorted int64 keys of ``pairs``, looked up with ``searchsorted``; other id
    types: a groupby and a join on the two columns.
    """
    if len(users) == 0 or len(pairs) == 0:
        return (np.zeros(len(users), dtype=np.int64),
                np.full(len(users), np.nan) if time is not None else None)
    left = pair_keys(users, items)
    right = pair_keys(pairs[USER].to_numpy(), pairs[ITEM].to_numpy())
    if left is not None and right is not None:
        order = np.argsort(right, kind="stable")
        keys = right[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        unique, counts = keys[starts], np.diff(np.r_[starts, len(keys)])
        at = np.minimum(np.searchsorted(unique, left), len(unique) - 1)
        found = unique[at] == left
        count = np.where(found, counts[at], 0).astype(np.int64)
        if time is None:
            return count, None
        latest = np.maximum.reduceat(pairs[time].to_numpy(dtype=np.float64)[order], starts)
        return count, np.where(found, latest[at], np.nan)
    grouped = pairs.groupby([USER, ITEM])
    table = grouped.size().rename("_n").to_frame()
    if time is not None:
        table["_last"] = grouped[time].max().astype(np.float64)
    probe = pd.DataFrame({USER: users, ITEM: items}).join(table, on=[USER, ITEM])
    count = probe["_n"].fillna(0).to_numpy(dtype=np.int64)
    return count, (probe["_last"].to_numpy(dtype=np.float64) if time is not None else None)


def seen_pairs(history: pd.DataFrame, cutoff: int, window_days: float | None) -> pd.DataFrame:
    """The (user, item) pairs the seen rule excludes: all of history, or its last N days."""
    if window_days is not None:
        history = history[history[TIME] >= cutoff - int(window_days * DAY)]
    return history[[USER, ITEM]]


def drop_seen(candidates: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Anti-join on (user_id, item_id): keep candidates absent from the user's history."""
    seen = pairs_isin(candidates[USER].to_numpy(), candidates[ITEM].to_numpy(), history)
    return candidates.loc[~seen].reset_index(drop=True)
