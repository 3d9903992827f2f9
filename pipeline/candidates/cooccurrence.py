"""Item-to-item co-occurrence neighbors (cosine), fitted as a distributed sum of sparse
matrices: each partition of users contributes ``X_pᵀ X_p`` and the sums merge associatively, so
the same code serves a tree reduction over any number of partitions."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.candidates.sorting import lexsort
from pipeline.io import ITEM, TIME, USER


def _partition_cooccurrence(history: pd.DataFrame, catalogue: pd.Index) -> sp.csr_matrix:
    pairs = history[[USER, ITEM]].drop_duplicates()
    item_codes = catalogue.get_indexer(pairs[ITEM])
    known = item_codes >= 0
    user_codes, _ = pd.factorize(pairs[USER].to_numpy()[known])
    item_codes = item_codes[known]
    n_users = int(user_codes.max()) + 1 if len(user_codes) else 0
    x = sp.csr_matrix(
        (np.ones(len(item_codes), dtype=np.float32), (user_codes, item_codes)),
        shape=(n_users, len(catalogue)),
    )
    return (x.T @ x).tocsr()


def _add(a: sp.csr_matrix, b: sp.csr_matrix) -> sp.csr_matrix:
    return a + b


def _tree_sum(parts: list) -> object:
    """Pairwise tree of delayed additions: depth log2(n), no single task sees all partials."""
    while len(parts) > 1:
        pairs = [dask.delayed(_add)(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0]


def fit_cooccurrence(
    events: dd.DataFrame, cutoff: int, catalogue: pd.Index, neighbors: int
) -> pd.DataFrame:
    """Top ``neighbors`` items per item by cosine of their user sets, from events before cutoff.

    Returns rows ``(item_id, neighbor_id, cooc_score)``.
    """
    return top_neighbors(item_gram(events, cutoff, catalogue), catalogue, neighbors)


def item_gram(events: dd.DataFrame, cutoff: int, catalogue: pd.Index) -> sp.csr_matrix:
    """``XᵀX`` of the binary user x item matrix before ``cutoff`` (catalogue order): how many
    users share each pair of items. Also the input of the item-kNN and EASE^R baselines."""
    history = events[events[TIME] < cutoff][[USER, ITEM]]
    partials = [
        dask.delayed(_partition_cooccurrence)(part, catalogue) for part in history.to_delayed()
    ]
    counts = dask.compute(_tree_sum(partials))[0] if partials else None
    if counts is None:
        counts = sp.csr_matrix((len(catalogue), len(catalogue)), dtype=np.float32)
    return counts


def top_neighbors(counts: sp.csr_matrix, catalogue: pd.Index, neighbors: int) -> pd.DataFrame:
    """Cosine-normalise co-occurrence counts and keep each item's ``neighbors`` best (ties: the
    lower catalogue position)."""
    norms = np.sqrt(np.asarray(counts.diagonal(), dtype=np.float64))
    norms[norms == 0] = 1.0
    cosine = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    cosine.setdiag(0.0)
    cosine.eliminate_zeros()
    rows = np.repeat(np.arange(cosine.shape[0]), np.diff(cosine.indptr))
    cosine.data /= norms[rows] * norms[cosine.indices]
    row, col, score, _ = row_top_n(cosine, neighbors)
    values = catalogue.to_numpy()
    return pd.DataFrame({ITEM: values[row], "neighbor_id": values[col],
                         "cooc_score": score.astype(np.float32)})


def row_top_n(matrix: sp.csr_matrix, n: int) -> tuple[np.ndarray, ...]:
    """Each row's ``n`` largest stored entries, best first (ties: the lower column), as
    ``(row, col, value, rank)`` arrays: a per-row threshold first (a partition of the padded
    rows), so the exact sort sees about ``n`` entries per row instead of all of them."""
    lengths = np.diff(matrix.indptr)
    row = np.repeat(np.arange(matrix.shape[0]), lengths)
    col, data = matrix.indices, matrix.data
    width = int(lengths.max()) if len(lengths) else 0
    if width > n:
        dense = np.full((matrix.shape[0], width), -np.inf)
        dense[row, np.arange(len(row)) - matrix.indptr[row]] = data
        threshold = np.partition(dense, width - n, axis=1)[:, width - n]
        kept = data >= threshold[row]  # the best n, and any ties with the n-th
        row, col, data = row[kept], col[kept], data[kept]
    order = lexsort((col, -data, row))
    row, col, data = row[order], col[order], data[order]
    starts = np.r_[0, np.cumsum(np.bincount(row, minlength=matrix.shape[0]))[:-1]]
    rank = np.arange(len(row)) - starts[row] + 1
    keep = rank <= n
    return row[keep], col[keep], data[keep], rank[keep]
