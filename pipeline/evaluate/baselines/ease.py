"""EASE^R (Steck, 2019): a closed-form item x item linear model, ``B = I - P / diag(P)`` with
``P = (XᵀX + λI)⁻¹`` and a zero diagonal. Its one hyperparameter λ is tuned on a validation split
carved from the end of the training period (never the holdout), widening the grid while the
score still improves at its edge.

The Gram matrix is a distributed sum of per-partition sparse ``X_pᵀ X_p``; only the
``items x items`` matrix reaches the client, so the catalogue is capped at ``max_items`` (the
most popular; 20,000 items is 3.2 GB in float64)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import dask.dataframe as dd
import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.candidates.cooccurrence import item_gram
from pipeline.evaluate.baselines.common import ItemScorer

log = logging.getLogger(__name__)


def ease_weights(gram: sp.spmatrix | np.ndarray, lam: float) -> np.ndarray:
    """The closed form: ``B = I - P / diag(P)``, ``P = (G + λI)⁻¹``, diagonal forced to 0."""
    g = gram.toarray() if sp.issparse(gram) else np.array(gram, dtype=np.float64)
    g = g.astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def fit_ease(events: dd.DataFrame, cutoff: int, catalogue: np.ndarray, lam: float) -> ItemScorer:
    gram = item_gram(events, cutoff, pd.Index(catalogue))
    return ItemScorer("ease", np.asarray(catalogue), "dense", ease_weights(gram, lam))


def tune_ease(
    events: dd.DataFrame, valid_start: int, catalogue: np.ndarray,
    score: Callable[[ItemScorer], float], grid: tuple[float, ...] = (100.0, 300.0, 1000.0),
    factor: float = 3.0, max_widen: int = 6,
) -> tuple[float, dict[float, float]]:
    """Pick λ by ``score`` (higher is better) of a model fitted before ``valid_start``.

    Starts from ``grid``; while the best λ sits at an end of the grid, adds the next value
    (x/÷ ``factor``) beyond it, at most ``max_widen`` times, and stops as soon as that does not
    improve the score.
    """
    gram = item_gram(events, valid_start, pd.Index(catalogue))
    catalogue = np.asarray(catalogue)

    def trial(lam: float) -> float:
        value = score(ItemScorer("ease", catalogue, "dense", ease_weights(gram, lam)))
        log.info("EASE^R λ=%g: validation %.4f", lam, value)
        return value

    return widen_search(trial, grid, factor, max_widen)


def widen_search(trial: Callable[[float], float], grid: tuple[float, ...], factor: float = 3.0,
                 max_widen: int = 6) -> tuple[float, dict[float, float]]:
    """Best value of ``trial`` over ``grid``, extended past whichever end is best until a step
    stops improving; returns the best value and every value tried."""
    tried = {float(lam): trial(float(lam)) for lam in sorted(grid)}
    for _ in range(max_widen):
        best = max(tried, key=tried.__getitem__)
        lams = sorted(tried)
        beyond = [lam for lam, edge in ((best / factor, lams[0]), (best * factor, lams[-1]))
                  if best == edge]
        if not beyond:
            break
        for lam in beyond:
            tried[lam] = trial(lam)
        if max(tried[lam] for lam in beyond) <= tried[best]:
            break
    best = max(tried, key=tried.__getitem__)
    return best, dict(sorted(tried.items()))
