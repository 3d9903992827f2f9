"""Item-kNN: score an item by its summed cosine similarity to the items in the user's history,
keeping each item's ``neighbors`` most similar items (sparse, scipy)."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.candidates.cooccurrence import item_gram
from pipeline.evaluate.baselines.common import ItemScorer


def cosine_knn(gram: sp.csr_matrix, neighbors: int) -> sp.csr_matrix:
    """Row-wise top ``neighbors`` cosine similarities (self excluded) from a co-count matrix."""
    norms = np.sqrt(np.asarray(gram.diagonal(), dtype=np.float64))
    norms[norms == 0] = 1.0
    coo = gram.tocoo()
    keep = coo.row != coo.col
    rows, cols = coo.row[keep], coo.col[keep]
    sim = coo.data[keep] / (norms[rows] * norms[cols])
    order = np.lexsort((cols, -sim, rows))
    rows, cols, sim = rows[order], cols[order], sim[order]
    starts = np.searchsorted(rows, rows, side="left")
    keep = (np.arange(len(rows)) - starts) < neighbors
    n = gram.shape[0]
    return sp.csr_matrix((sim[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(n, n))


def fit_itemknn(events: dd.DataFrame, cutoff: int, catalogue: np.ndarray,
                neighbors: int) -> ItemScorer:
    """Fit on the events before ``cutoff``; ``catalogue``: the items that may be scored."""
    gram = item_gram(events, cutoff, pd.Index(catalogue))
    return ItemScorer("itemknn", np.asarray(catalogue), "sparse", cosine_knn(gram, neighbors))
