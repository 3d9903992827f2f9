"""EASE^R (Steck, 2019), the item-item generator: a closed-form linear model of which items a
user's history predicts, ``B = I - P / diag(P)`` with ``P = (XᵀX + λI)⁻¹`` (zero diagonal), and
a user's scores ``x_u B``. On temporal splits of explicit and implicit logs alike it is the
strongest one-line collaborative model, so it retrieves candidates and scores every candidate,
whichever generator proposed it.

Two forms of the same model: the item side keeps ``B`` (``items x items``); when the history has
fewer users than items, the user side keeps Woodbury's ``P = (I - Xᵀ(λI + XXᵀ)⁻¹X) / λ`` in its
factors, so a grocery log of a few hundred users over tens of thousands of products never forms
an ``items x items`` matrix. λ is tuned on a validation window from one factorisation of the
smaller Gram matrix (``tune_lambda``), which turns every λ into a diagonal rescale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import dask.dataframe as dd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.linalg import lapack

from pipeline.errors import DataError
from pipeline.io import ITEM, TIME, USER

log = logging.getLogger(__name__)

LAMBDA_GRID = tuple(float(v) for v in np.geomspace(1.0, 30_000.0, 14))


@dataclass(frozen=True, eq=False)
class EaseScores:
    """A dense ``users x items`` block of EASE^R scores and the users' binary history."""

    users: pd.Index
    items: pd.Index
    scores: np.ndarray  # float32
    history: sp.csr_matrix

    def top_n(self, n: int, exclude_history: bool) -> pd.DataFrame:
        """``(user_id, item_id, ease_rank)``: each user's ``n`` best items, rank 1 first (ties:
        the lower catalogue position), their own items left out when ``exclude_history``."""
        scores = self.scores
        if exclude_history and self.history.nnz:
            scores = scores.copy()
            r, c = self.history.nonzero()
            scores[r, c] = -np.inf
        n = min(n, scores.shape[1])
        if n == 0 or len(self.users) == 0:
            return pd.DataFrame({USER: self.users.to_numpy()[:0], ITEM: self.items.to_numpy()[:0],
                                 "ease_rank": np.empty(0, dtype=np.int64)})
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        picked = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -picked), axis=1)
        best = np.take_along_axis(part, order, axis=1)
        valid = np.isfinite(np.take_along_axis(scores, best, axis=1))
        ranks = np.broadcast_to(np.arange(1, n + 1, dtype=np.int64), best.shape)
        return pd.DataFrame({
            USER: np.broadcast_to(self.users.to_numpy()[:, None], best.shape)[valid],
            ITEM: self.items.to_numpy()[best[valid]],
            "ease_rank": ranks[valid],
        })

    def pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The score of each (user, item) row; NaN where the item is outside the catalogue."""
        u = self.users.get_indexer(users)
        i = self.items.get_indexer(items)
        out = np.full(len(users), np.nan, dtype=np.float32)
        known = (u >= 0) & (i >= 0)
        out[known] = self.scores[u[known], i[known]]
        return out


@dataclass(frozen=True, eq=False)
class EaseModel:
    """EASE^R fitted over ``items`` (raw ids, matrix order) with regularisation ``lam``.

    Item side: ``weights`` is ``B``; a block's scores are the sparse product ``x B``. User side:
    ``train`` (the training users' history ``X``), ``inverse`` (``(λI + XXᵀ)⁻¹``) and ``diag_p``
    give ``x B = x - (x P) / diag(P)`` with ``x P = (x - (x Xᵀ) M X) / λ``.
    """

    items: pd.Index
    lam: float
    weights: np.ndarray | None = None
    train: sp.csr_matrix | None = None
    inverse: np.ndarray | None = None
    diag_p: np.ndarray | None = None

    def block(self, users: np.ndarray, history: pd.DataFrame) -> EaseScores:
        """Every catalogue item's score for ``users`` from their ``history``."""
        x = history_matrix(history, users, self.items)
        if self.weights is not None:
            scores = np.asarray(x @ self.weights, dtype=np.float32)
        else:
            dense = x.toarray()
            xp = (dense - (np.asarray((x @ self.train.T).toarray()) @ self.inverse)
                  @ self.train) / self.lam
            scores = np.asarray(dense - xp / self.diag_p[None, :], dtype=np.float32)
        return EaseScores(pd.Index(users), self.items, scores, x)


def fit_ease(x: sp.csr_matrix, items: pd.Index, lam: float) -> EaseModel:
    """EASE^R of the binary ``users x items`` history ``x`` in the cheaper of its two forms."""
    users, n_items = x.shape
    if users >= n_items:
        return EaseModel(items, lam, weights=ease_weights(x.T @ x, lam))
    x64 = x.astype(np.float64).tocsr()
    gram = (x64 @ x64.T).toarray()
    gram[np.diag_indices_from(gram)] += lam
    inverse = spd_inverse(gram, lam)
    mx = sp.csr_matrix(x64.T @ inverse).T  # M X, (users, items); M is symmetric
    diag_p = (1.0 - np.asarray(x64.multiply(mx).sum(axis=0)).ravel()) / lam
    return EaseModel(items, lam, train=x.astype(np.float32).tocsr(),
                     inverse=inverse.astype(np.float32), diag_p=diag_p.astype(np.float32))


def spd_inverse(matrix: np.ndarray, lam: float) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix by Cholesky (half the work of a
    general inverse); ``lam`` only names the λ in the error."""
    factor, info = lapack.dpotrf(np.asarray(matrix, dtype=np.float64, order="F"), lower=True,
                                 overwrite_a=True)
    if info == 0:
        inverse, info = lapack.dpotri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise DataError(f"EASE^R: the Gram matrix plus λ={lam:g} is not positive definite "
                        f"(LAPACK info {info}); raise the λ grid")
    return np.tril(inverse) + np.tril(inverse, -1).T  # dpotri fills one triangle


def ease_weights(gram: sp.spmatrix | np.ndarray, lam: float) -> np.ndarray:
    """``B = I - P / diag(P)`` with ``P = (G + λI)⁻¹``, diagonal 0, as float32."""
    g = gram.toarray() if sp.issparse(gram) else np.array(gram)
    g = np.asarray(g, dtype=np.float64, order="F")
    g[np.diag_indices_from(g)] += lam
    p = spd_inverse(g, lam)
    b = p / (-np.diag(p))[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def history_matrix(history: pd.DataFrame, users: np.ndarray, items: pd.Index) -> sp.csr_matrix:
    """Binary ``users x items`` matrix of ``history`` (rows in ``users`` order); items outside
    ``items`` are dropped."""
    rows = pd.Index(users).get_indexer(history[USER].to_numpy())
    cols = items.get_indexer(history[ITEM].to_numpy())
    keep = (rows >= 0) & (cols >= 0)
    x = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
                      shape=(len(users), len(items)))
    x.data[:] = 1.0  # repeated pairs were summed by the constructor: back to binary
    return x


@dataclass(frozen=True, eq=False)
class Spectrum:
    """``XᵀX = W diag(s) Wᵀ`` on its range: from ``XᵀX`` itself when items <= users, from
    ``XXᵀ = Q diag(s) Qᵀ`` (``W = XᵀQ / sqrt(s)``) otherwise. Then for every λ,
    ``P(λ) = W diag(1/(s+λ)) Wᵀ + (I - WWᵀ)/λ``, without another factorisation."""

    w: np.ndarray  # (items, rank)
    s: np.ndarray  # (rank,)
    full: bool  # rank == items: the (I - WWᵀ)/λ term vanishes

    def scores(self, x: sp.csr_matrix, lam: float) -> np.ndarray:
        """EASE^R scores ``x B`` of the users in ``x`` (``users x items``) for ``lam``."""
        w2 = np.square(self.w)
        inv = 1.0 / (self.s + lam)
        diag_p = w2 @ inv
        xw = np.asarray(x @ self.w)
        xp = (xw * inv) @ self.w.T
        dense = x.toarray()
        if not self.full:
            diag_p = diag_p + (1.0 - w2.sum(axis=1)) / lam
            xp += (dense - xw @ self.w.T) / lam
        return (dense - xp / diag_p[None, :]).astype(np.float32)


def item_spectrum(gram: sp.spmatrix | np.ndarray) -> Spectrum:
    """The eigendecomposition of ``XᵀX`` (the item side: items <= users)."""
    g = gram.toarray() if sp.issparse(gram) else np.asarray(gram)
    s, w = np.linalg.eigh(np.asarray(g, dtype=np.float64))
    return Spectrum(w, np.clip(s, 0.0, None), full=True)


def user_spectrum(x: sp.csr_matrix) -> Spectrum:
    """``XᵀX``'s range from the eigendecomposition of ``XXᵀ`` (the user side: users < items)."""
    x64 = x.astype(np.float64).tocsr()
    s, q = np.linalg.eigh((x64 @ x64.T).toarray())
    keep = s > 1e-9 * max(float(s.max(initial=0.0)), 1.0)
    w = np.asarray(x64.T @ q[:, keep]) / np.sqrt(s[keep])[None, :]
    return Spectrum(w, s[keep], full=False)


def tune_lambda(factors: Spectrum, block: sp.csr_matrix, score: Callable[[np.ndarray], float],
                grid: tuple[float, ...],
                done: Callable[[int, int], None] | None = None) -> tuple[float, dict[float, float]]:
    """The λ of ``grid`` whose scores for the validation users' history ``block`` maximise
    ``score`` (given the dense score block; higher is better), and every λ's score: one
    factorisation serves the whole grid."""
    if block.shape[0] == 0:
        raise DataError("EASE^R: no validation users to tune λ on; the log is too short for "
                        "the split (or give candidates.ease.lambda)")
    tried: dict[float, float] = {}
    for lam in grid:
        tried[float(lam)] = float(score(factors.scores(block, lam)))
        log.debug("EASE^R λ=%g: validation %.4f", lam, tried[float(lam)])
        if done is not None:
            done(len(tried), len(grid))
    return max(tried, key=tried.__getitem__), tried


def ease_catalogue(popular: pd.DataFrame, n_users: int, max_items: int) -> pd.Index:
    """The items EASE^R models: all of them when the history has fewer users than
    ``max_items`` (the user-side form costs ``users³``), else the ``max_items`` most popular
    (the item side costs ``items³``)."""
    if n_users < min(len(popular), max_items):
        return popular_head(popular, len(popular))
    return popular_head(popular, max_items)


def popular_head(popular: pd.DataFrame, n: int) -> pd.Index:
    """The ``n`` items with the most interactions (ties: the lower id), most popular first."""
    ordered = popular.sort_values(["pop_count", ITEM], ascending=[False, True], kind="stable")
    return pd.Index(ordered[ITEM].to_numpy()[:n])


def history_pairs(events: dd.DataFrame, cutoff: int) -> pd.DataFrame:
    """The distinct (user, item) pairs before ``cutoff``, on the client (the user side of
    EASE^R needs the whole binary history; it is used only when users are few)."""
    history = events[events[TIME] < cutoff][[USER, ITEM]]
    return history.map_partitions(pd.DataFrame.drop_duplicates).compute()

