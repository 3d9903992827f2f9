"""Retrieval embeddings: matrix factorisation trained with BPR, saved as Parquet, and an exact
top-N by blocked matrix products.

BPR (Rendle et al., 2009) learns user vectors ``p_u``, item vectors ``q_i`` and item biases
``b_i`` so that an item a user interacted with scores above a uniformly sampled one:
``score(u, i) = p_u . q_i + b_i``. A night's (user, item) pairs fit in memory on the client (or
one worker), so training is a plain torch loop over shuffled mini-batches of pairs.

Saved layout (a folder): ``users.parquet`` (``user_id`` raw id, ``embedding``
fixed-size list<float32>), ``items.parquet`` (``item_id``, ``bias``, ``embedding``) and
``retrieval.json`` (parameters, sizes, format version). :func:`top_n_frame` reads them back and
returns each user's N best items; it excludes nothing (filtering is the recommend stage's job).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from pipeline.errors import ConfigError, DataError

FORMAT_VERSION = 1
PathLike = str | os.PathLike[str]


class BPRRetrieval:
    """Matrix factorisation with the BPR loss, scikit-learn style (``fit`` returns self)."""

    def __init__(self, dim: int = 32, epochs: int = 20, learning_rate: float = 0.02,
                 reg: float = 1e-5, batch_size: int = 8192, seed: int = 0,
                 device: str | None = None) -> None:
        if dim < 1 or epochs < 1 or batch_size < 1 or learning_rate <= 0 or reg < 0:
            raise ConfigError("retrieval: dim, epochs, batch_size must be >= 1, learning_rate > 0 "
                              f"and reg >= 0 (got {dim}, {epochs}, {batch_size}, "
                              f"{learning_rate}, {reg})")
        self.dim, self.epochs, self.learning_rate = dim, epochs, learning_rate
        self.reg, self.batch_size, self.seed = reg, batch_size, seed
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.user_ids_: np.ndarray | None = None
        self.item_ids_: np.ndarray | None = None
        self.user_factors_: np.ndarray | None = None
        self.item_factors_: np.ndarray | None = None
        self.item_bias_: np.ndarray | None = None
        self.history_: list[float] = []

    def fit(self, interactions: Any, user: str = "user_id", item: str = "item_id"
            ) -> BPRRetrieval:
        """Learn from distinct (user, item) pairs of a pandas or Dask frame."""
        pairs = _pairs(interactions, user, item)
        u_codes, self.user_ids_ = pd.factorize(pairs[user], sort=True)
        i_codes, self.item_ids_ = pd.factorize(pairs[item], sort=True)
        self.user_ids_, self.item_ids_ = np.asarray(self.user_ids_), np.asarray(self.item_ids_)
        n_users, n_items = len(self.user_ids_), len(self.item_ids_)
        if n_items < 2:
            raise DataError(f"retrieval needs at least 2 distinct items in {item!r}, got {n_items}")
        gen = torch.Generator().manual_seed(self.seed)
        dev = self.device
        users = torch.nn.Parameter((torch.randn(n_users, self.dim, generator=gen) * 0.1).to(dev))
        items = torch.nn.Parameter((torch.randn(n_items, self.dim, generator=gen) * 0.1).to(dev))
        bias = torch.nn.Parameter(torch.zeros(n_items, device=dev))
        opt = torch.optim.Adam([users, items, bias], lr=self.learning_rate)
        u_all = torch.from_numpy(u_codes.astype(np.int64)).to(dev)
        i_all = torch.from_numpy(i_codes.astype(np.int64)).to(dev)
        n = len(u_all)
        self.history_ = []
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=gen).to(dev)
            negatives = torch.randint(0, n_items, (n,), generator=gen).to(dev)
            total = torch.zeros((), device=dev)
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                u, i, j = u_all[idx], i_all[idx], negatives[start:start + self.batch_size]
                pu, qi, qj = users[u], items[i], items[j]
                x = (pu * (qi - qj)).sum(1) + bias[i] - bias[j]
                loss = -F.logsigmoid(x).sum()
                penalty = self.reg * (pu.square().sum() + qi.square().sum() + qj.square().sum())
                opt.zero_grad(set_to_none=True)
                ((loss + penalty) / len(idx)).backward()
                opt.step()
                total += loss.detach()
            self.history_.append(float(total) / n)
        self.user_factors_ = users.detach().cpu().numpy()
        self.item_factors_ = items.detach().cpu().numpy()
        self.item_bias_ = bias.detach().cpu().numpy()
        return self

    def save(self, directory: PathLike) -> Path:
        """Write the embeddings as Parquet plus ``retrieval.json``; returns the folder."""
        if self.user_factors_ is None:
            raise RuntimeError("BPRRetrieval is not fitted: nothing to save")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"user_id": self.user_ids_,
                                 "embedding": _fixed_list(self.user_factors_)}),
                       out / "users.parquet")
        pq.write_table(pa.table({"item_id": self.item_ids_, "bias": self.item_bias_,
                                 "embedding": _fixed_list(self.item_factors_)}),
                       out / "items.parquet")
        card = {"format_version": FORMAT_VERSION, "kind": "bpr_mf", "dim": self.dim,
                "users": len(self.user_ids_), "items": len(self.item_ids_),
                "params": {"epochs": self.epochs, "learning_rate": self.learning_rate,
                           "reg": self.reg, "batch_size": self.batch_size, "seed": self.seed},
                "train_loss": self.history_}
        (out / "retrieval.json").write_text(json.dumps(card, indent=2))
        return out


def _pairs(interactions: Any, user: str, item: str) -> pd.DataFrame:
    missing = [c for c in (user, item) if c not in interactions.columns]
    if missing:
        raise DataError(f"interactions lack column(s) {missing!r} for retrieval training; "
                        f"columns present: {list(interactions.columns)!r}")
    pairs = interactions[[user, item]].drop_duplicates()
    if hasattr(pairs, "compute"):
        pairs = pairs.compute()  # distinct pairs of one night: small enough for the client
    nulls = [c for c in (user, item) if pairs[c].isna().any()]
    if nulls:
        raise DataError(f"interactions have null {nulls!r}; drop those rows before retrieval "
                        "training")
    if len(pairs) == 0:
        raise DataError("no interactions to train the retrieval model on")
    return pairs.reset_index(drop=True)


def _fixed_list(matrix: np.ndarray) -> pa.FixedSizeListArray:
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), m.shape[1])


def read_embeddings(path: PathLike, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(raw ids, (n, dim) float32 matrix, bias or None) from a users/items Parquet file."""
    table = pq.read_table(path)
    if key not in table.column_names or "embedding" not in table.column_names:
        raise DataError(f"{path} lacks {key!r} or 'embedding'; is it a retrieval embedding file?")
    emb = table.column("embedding").combine_chunks()
    dim = emb.type.list_size
    matrix = emb.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
    bias = table.column("bias").to_numpy() if "bias" in table.column_names else None
    return table.column(key).to_numpy(zero_copy_only=False), matrix, bias


def exact_top_n(
    users: np.ndarray | torch.Tensor,
    items: np.ndarray | torch.Tensor,
    n: int,
    *,
    item_bias: np.ndarray | torch.Tensor | None = None,
    block_size: int = 4096,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``n`` highest ``u . v + bias`` items: (scores, item positions), best first.

    Users are scored ``block_size`` at a time, so memory is ``block_size x n_items`` floats.
    """
    if n < 1:
        raise ConfigError(f"top-N needs n >= 1, got {n}")
    dev = torch.device(device) if device else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    item_t = _tensor(items).to(dev)
    bias_t = None if item_bias is None else _tensor(item_bias).to(dev)
    user_t = _tensor(users)
    k = min(n, item_t.shape[0])
    scores = np.empty((user_t.shape[0], k), dtype=np.float32)
    index = np.empty((user_t.shape[0], k), dtype=np.int64)
    with torch.no_grad():
        for start in range(0, user_t.shape[0], block_size):
            block = user_t[start:start + block_size].to(dev) @ item_t.T
            if bias_t is not None:
                block += bias_t
            top = torch.topk(block, k, dim=1)
            scores[start:start + len(block)] = top.values.cpu().numpy()
            index[start:start + len(block)] = top.indices.cpu().numpy()
    return scores, index


def _tensor(values: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 tensor; numpy input is copied (Arrow-backed arrays are read-only)."""
    if isinstance(values, torch.Tensor):
        return values.float()
    return torch.from_numpy(np.array(values, dtype=np.float32))


def top_n_frame(directory: PathLike, n: int, user_ids: Sequence[Any] | None = None,
                **options: Any) -> pd.DataFrame:
    """``user_id, rank, item_id, score`` (rank from 1) for ``user_ids`` (default: every user).

    Users without an embedding are left out; the recommend stage gives them its fallback.
    """
    folder = Path(directory)
    uid, umat, _ = read_embeddings(folder / "users.parquet", "user_id")
    iid, imat, bias = read_embeddings(folder / "items.parquet", "item_id")
    if user_ids is not None:
        pos = pd.Index(uid).get_indexer(pd.Index(np.asarray(user_ids)))
        pos = pos[pos >= 0]
        uid, umat = uid[pos], umat[pos]
    scores, index = exact_top_n(umat, imat, n, item_bias=bias, **options)
    k = scores.shape[1]
    return pd.DataFrame({
        "user_id": np.repeat(uid, k),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(uid)),
        "item_id": iid[index.reshape(-1)],
        "score": scores.reshape(-1),
    })


def fit_retrieval(events: Any, cutoff: int, params: dict[str, Any], out: PathLike,
                  time_column: str = "timestamp") -> Path:
    """Train BPR on the (user, item) pairs before ``cutoff`` and save it under ``out``; a model
    already saved there with the same parameters and cutoff is kept (a resumed night retrains
    nothing). ``params`` are ``BPRRetrieval``'s keyword arguments."""
    folder = Path(out)
    card_path = folder / "retrieval.json"
    if card_path.exists():
        card = json.loads(card_path.read_text())
        if card.get("cutoff") == cutoff and card.get("params") == _card_params(params):
            return folder
    history = events[events[time_column] < cutoff]
    model = BPRRetrieval(**params).fit(history)
    model.save(folder)
    card = json.loads(card_path.read_text())
    card.update(cutoff=cutoff, params=_card_params(params))
    tmp = card_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(card, indent=2))
    tmp.replace(card_path)
    return folder


def _card_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in sorted(params)}
