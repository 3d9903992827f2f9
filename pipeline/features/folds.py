"""Deterministic k-fold assignment for out-of-fold target encoding.

A row's fold is a stable hash of (seed, the row's values in every column, columns in name order)
modulo k. It depends on neither the partitioning nor the index (Parquet partitions often restart
their index at 0), so a pandas and a Dask ``fit_transform`` of the same rows agree. Identical rows
share a fold, which is harmless: they would leak each other's target otherwise.
"""

from __future__ import annotations

import numpy as np

from .backend import hash_values


def seed_salt(seed: int) -> np.uint64:
    """A well-mixed 64-bit salt for a seed (nearby seeds give unrelated fold assignments)."""
    return np.uint64(hash_values(np.array([seed], dtype=np.int64))[0])


def fold_ids(row_hash: np.ndarray, seed: int, kfold: int) -> np.ndarray:
    """Fold in ``[0, kfold)`` of each row, from its row hash."""
    mixed = hash_values(row_hash ^ seed_salt(seed))
    return (mixed % np.uint64(kfold)).astype(np.int64)
