"""Deterministic k-fold assignment for out-of-fold target encoding.

A row's fold is a stable hash of (seed, the row's group-key values, its index label) modulo k.
The target must stay out of it: with the label in the hash, rows of one key with the same label
share a fold, so a positive row's out-of-fold encoding leaves out exactly the key's other
positives. Encodings then anti-correlate with the row's own label, a pattern a model learns on
training rows and that no scored row has, so its test score drops while its validation score on
training rows rises. Keys alone would put all of a key's rows in one fold (its out-of-fold
encoding is then always the prior), so the index label tells a key's rows apart: within one
``fit_transform`` every pass sees the same partitions and index, and a Dask frame made from a
pandas one keeps its index, so both give the same folds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..backend import hash_values


def seed_salt(seed: int) -> np.uint64:
    """A well-mixed 64-bit salt for a seed (nearby seeds give unrelated fold assignments)."""
    return np.uint64(hash_values(np.array([seed], dtype=np.int64))[0])


def fold_ids(row_hash: np.ndarray, seed: int, kfold: int) -> np.ndarray:
    """Fold in ``[0, kfold)`` of each row, from its row hash."""
    mixed = hash_values(row_hash ^ seed_salt(seed))
    return (mixed % np.uint64(kfold)).astype(np.int64)


def row_fold_hash(frame: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """Per-row hash of ``frame``'s ``keys`` columns (name order) and its index label."""
    own = frame[sorted(keys)]
    return pd.util.hash_pandas_object(own, index=True).to_numpy(dtype=np.uint64)
