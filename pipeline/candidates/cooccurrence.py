"""Item-to-item co-occurrence neighbours (cosine), fitted as a distributed sum of sparse
matrices: each partition of users contributes ``X_pᵀ X_p`` and the sums merge associatively, so
the same code serves a tree reduction over any number of partitions."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import scipy.sparse as sp

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
    return top_neighbours(item_gram(events, cutoff, catalogue), catalogue, neighbors)


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


def top_neighbours(counts: sp.csr_matrix, catalogue: pd.Index, neighbors: int) -> pd.DataFrame:
    """Cosine-normalise co-occurrence counts and keep each item's ``neighbors`` best."""
    norms = np.sqrt(np.asarray(counts.diagonal(), dtype=np.float64))
    coo = counts.tocoo()
    off_diagonal = coo.row != coo.col
    rows, cols = coo.row[off_diagonal], coo.col[off_diagonal]
    score = coo.data[off_diagonal] / (norms[rows] * norms[cols])
    table = pd.DataFrame({"row": rows, "col": cols, "cooc_score": score.astype(np.float32)})
    table = table.sort_values(["row", "cooc_score", "col"], ascending=[True, False, True])
    table = table.groupby("row", sort=False).head(neighbors)
    values = catalogue.to_numpy()
    return pd.DataFrame(
        {
            ITEM: values[table["row"].to_numpy()],
            "neighbor_id": values[table["col"].to_numpy()],
            "cooc_score": table["cooc_score"].to_numpy(),
        }
    )
