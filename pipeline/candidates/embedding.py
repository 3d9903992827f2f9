"""The embedding generator of stage 1: each user's ``n`` best items by the retrieval model's
``u . v + b`` (BPR matrix factorisation, ``pipeline.candidates.bpr``), and the same score as a
ranker signal for every candidate, whichever generator proposed it.

The model folder is a per-night artifact like the feature workflow: each process (so each Dask
worker) loads it once (``load_embedding_index``) and scores only its partition's users, in
blocks whose ``users x items`` score matrix stays near 16 MiB.

Search is ``exact`` or ``faiss``; ``auto`` picks faiss from ``faiss_min_items`` items when faiss
is installed. ``exact`` is brute force: torch matrix products on a GPU; on a CPU faiss's flat
inner-product index when installed (its BLAS products and heap selection beat torch's products
and ``topk`` there), else torch. ``faiss`` is an HNSW graph over inner products, built once per
process: approximate, and sub-linear in the catalogue.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.candidates.bpr import exact_top_n, read_embeddings
from pipeline.errors import ConfigError, DataError
from pipeline.io import ITEM, USER

Search = Literal["auto", "exact", "faiss"]
SCORE_BLOCK_FLOATS = 1 << 22  # users x items scores per exact block: 16 MiB of float32
HNSW_LINKS = 32  # faiss HNSW graph degree (M)
PAIR_CHUNK = 32_768  # (user, item) rows scored at a time by ``pair_scores``


@dataclass(frozen=True, eq=False)
class EmbeddingIndex:
    """User and item vectors of one retrieval model, with id lookups."""

    users: pd.Index  # raw user ids, position = row of ``user_vectors``
    user_vectors: np.ndarray  # (users, dim) float32
    items: pd.Index  # raw item ids, position = row of ``item_vectors``
    item_vectors: np.ndarray  # (items, dim) float32
    item_bias: np.ndarray  # (items,) float32

    @classmethod
    def load(cls, directory: str | Path) -> EmbeddingIndex:
        folder = Path(directory)
        if not (folder / "retrieval.json").exists():
            raise DataError(f"no retrieval model at {folder}: the train stage writes it when "
                            "candidates.embedding is configured")
        uid, umat, _ = read_embeddings(folder / "users.parquet", "user_id")
        iid, imat, bias = read_embeddings(folder / "items.parquet", "item_id")
        if bias is None:
            bias = np.zeros(len(iid), dtype=np.float32)
        return cls(pd.Index(uid), np.ascontiguousarray(umat, dtype=np.float32), pd.Index(iid),
                   np.ascontiguousarray(imat, dtype=np.float32), bias.astype(np.float32))

    def pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``u . v + b`` per (user, item) row; NaN where either has no vector (new ids)."""
        u = self.users.get_indexer(users)
        i = self.items.get_indexer(items)
        out = np.full(len(users), np.nan, dtype=np.float32)
        known = np.flatnonzero((u >= 0) & (i >= 0))
        for start in range(0, len(known), PAIR_CHUNK):  # gathered rows stay in cache
            rows = known[start:start + PAIR_CHUNK]
            uu, ii = u[rows], i[rows]
            dots = np.einsum("ij,ij->i", self.user_vectors[uu], self.item_vectors[ii])
            out[rows] = dots + self.item_bias[ii]
        return out

    def top_n(self, user_ids: np.ndarray, n: int, search: Search = "exact",
              faiss_min_items: int = 200_000) -> pd.DataFrame:
        """``(user_id, item_id, emb_score, emb_rank)``: each known user's ``n`` best items,
        rank 1 first; users without a vector get no rows (the other generators serve them)."""
        at = self.users.get_indexer(user_ids)
        known = at >= 0
        users = np.asarray(user_ids)[known]
        vectors = self.user_vectors[at[known]]
        if resolve_search(search, len(self.items), faiss_min_items) == "faiss":
            scores, index = self._faiss_search(self._hnsw, vectors, n)
        elif _optional_faiss() is not None and not _cuda():
            scores, index = self._faiss_search(self._flat, vectors, n)
        else:
            block = max(1, min(4096, SCORE_BLOCK_FLOATS // max(1, len(self.items))))
            with _worker_threads():
                scores, index = exact_top_n(vectors, self.item_vectors, n,
                                            item_bias=self.item_bias, block_size=block)
        width = scores.shape[1] if scores.ndim == 2 else 0
        found = index >= 0  # faiss pads with -1 when its graph returns fewer than n
        return pd.DataFrame({
            USER: np.repeat(users, found.sum(axis=1)),
            ITEM: self.items.to_numpy()[index[found]],
            "emb_score": scores[found].astype(np.float32),
            "emb_rank": np.tile(np.arange(1, width + 1, dtype=np.int64), (len(users), 1))[found],
        })

    def _augmented_items(self) -> np.ndarray:
        """``[v, b]`` per item: searched with ``[u, 1]``, the inner product is ``u . v + b``."""
        return np.ascontiguousarray(np.hstack([self.item_vectors, self.item_bias[:, None]]),
                                    dtype=np.float32)

    @functools.cached_property
    def _flat(self) -> Any:
        """faiss's exact (brute-force) inner-product index; built on first use per process."""
        faiss = _import_faiss()
        items = self._augmented_items()
        index = faiss.IndexFlatIP(items.shape[1])
        index.add(items)
        return index

    @functools.cached_property
    def _hnsw(self) -> Any:
        """An approximate HNSW index over inner products; built on first use per process."""
        faiss = _import_faiss()
        items = self._augmented_items()
        index = faiss.IndexHNSWFlat(items.shape[1], HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
        with _worker_threads():
            index.add(items)
        return index

    def _faiss_search(self, index: Any, vectors: np.ndarray,
                      n: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(n, len(self.items))
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = max(2 * k, 64)  # candidate list: recall rises with it
        query = np.hstack([vectors, np.ones((len(vectors), 1), dtype=np.float32)])
        with _worker_threads():
            scores, positions = index.search(np.ascontiguousarray(query, dtype=np.float32), k)
        return scores, positions


def resolve_search(search: Search, n_items: int, faiss_min_items: int) -> str:
    """``exact`` or ``faiss``; ``faiss`` asked for explicitly must be installed."""
    if search == "exact":
        return "exact"
    if search == "faiss":
        _import_faiss()
        return "faiss"
    if n_items < faiss_min_items:
        return "exact"
    try:
        _import_faiss()
    except ConfigError:
        return "exact"
    return "faiss"


def _import_faiss() -> Any:
    faiss = _optional_faiss()
    if faiss is None:
        raise ConfigError("candidates.embedding.search is 'faiss' but faiss is not installed: "
                          "pip install faiss-cpu (or set search: exact)")
    return faiss


@contextmanager
def _worker_threads() -> Iterator[None]:
    """One BLAS/OpenMP thread inside a Dask worker (its other workers use the other cores);
    the process's own setting elsewhere."""
    try:
        from distributed import get_worker

        get_worker()
    except ValueError:
        yield
        return
    import torch

    before = torch.get_num_threads()
    faiss = _optional_faiss()
    faiss_before = faiss.omp_get_max_threads() if faiss is not None else None
    torch.set_num_threads(1)
    if faiss is not None:
        faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if faiss is not None:
            faiss.omp_set_num_threads(faiss_before)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _optional_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        return None
    return faiss


@functools.lru_cache(maxsize=4)
def _cached_index(path: str, mtime_ns: int) -> EmbeddingIndex:
    return EmbeddingIndex.load(path)


def load_embedding_index(directory: str | Path) -> EmbeddingIndex:
    """The retrieval model at ``directory``, loaded once per process (so once per worker)."""
    card = Path(directory) / "retrieval.json"
    return _cached_index(str(directory), card.stat().st_mtime_ns if card.exists() else 0)


def embedding_candidates(users: np.ndarray, directory: str, n: int, search: Search = "auto",
                         faiss_min_items: int = 200_000) -> pd.DataFrame:
    """Stage 1's embedding generator for one partition's ``users``."""
    return load_embedding_index(directory).top_n(users, n, search, faiss_min_items)
