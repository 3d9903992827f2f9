"""EASE^R: both forms and the λ search equal the closed form; the generator lists what a
user's history predicts, without their own items when the filter would drop them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.candidates.ease import (
    EaseScores,
    ease_catalogue,
    ease_weights,
    fit_ease,
    history_matrix,
    item_spectrum,
    tune_lambda,
    user_spectrum,
)
from pipeline.candidates.fit import CutoffInputs, fit_context
from pipeline.config import CandidatesSpec
from tests.helpers import DAY, T0, log


def closed_form(x: np.ndarray, lam: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return x @ b


def test_ease_weights_minimise_the_objective_with_a_zero_diagonal() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 6)) < 0.4).astype(np.float64)
    lam = 5.0
    b = ease_weights(sp.csr_matrix(x.T @ x), lam).astype(np.float64)
    assert np.diag(b) == pytest.approx(np.zeros(6), abs=1e-6)
    # B minimises ||X - XB||² + λ||B||² under diag(B) = 0: the gradient is zero off the diagonal
    grad = (x.T @ x + lam * np.eye(6)) @ b - x.T @ x
    assert np.abs(grad[~np.eye(6, dtype=bool)]).max() < 1e-4


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 30), st.integers(2, 30), st.floats(0.5, 500.0), st.integers(0, 10**6))
def test_both_forms_and_the_spectrum_score_like_the_closed_form(users: int, items: int,
                                                                lam: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < 0.3).astype(np.float32)
    x = sp.csr_matrix(dense)
    expected = closed_form(dense.astype(np.float64), lam)
    pairs = pd.DataFrame({"user_id": x.nonzero()[0], "item_id": x.nonzero()[1]})
    model = fit_ease(x, pd.Index(np.arange(items)), lam)  # user side when users < items
    got = model.block(np.arange(users), pairs).scores
    assert got == pytest.approx(expected, abs=2e-4, rel=1e-3)
    spectrum = item_spectrum(x.T @ x) if users >= items else user_spectrum(x)
    assert spectrum.scores(x, lam) == pytest.approx(expected, abs=2e-4, rel=1e-3)


def test_lambda_search_returns_the_best_of_the_grid() -> None:
    rng = np.random.default_rng(3)
    x = sp.csr_matrix((rng.random((60, 12)) < 0.3).astype(np.float32))
    seen: list[float] = []

    def score(scores: np.ndarray) -> float:  # peaks at the λ whose scores are smallest
        seen.append(float(np.abs(scores).sum()))
        return -abs(len(seen) - 3)

    best, tried = tune_lambda(item_spectrum(x.T @ x), x[:5], score, (1.0, 10.0, 100.0, 1000.0))
    assert best == 100.0 and list(tried) == [1.0, 10.0, 100.0, 1000.0]


def test_top_n_ranks_by_score_ties_by_position_and_skips_the_users_items() -> None:
    scores = np.array([[0.5, 2.0, 2.0, 1.0], [1.0, 0.0, 3.0, 2.0]], dtype=np.float32)
    history = sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 0, 0, 0]], dtype=np.float32))
    block = EaseScores(pd.Index([7, 8]), pd.Index([10, 11, 12, 13]), scores, history)
    kept = block.top_n(2, exclude_history=True)
    assert kept.values.tolist() == [[7, 11, 1], [7, 13, 2], [8, 12, 1], [8, 13, 2]]
    every = block.top_n(2, exclude_history=False)
    assert every[every["user_id"] == 7]["item_id"].tolist() == [11, 12]  # tie: lower position
    assert np.isnan(block.pair_scores(np.array([7, 7]), np.array([12, 99]))).tolist() == [
        False, True]  # an item outside the catalogue has no score


def test_the_catalogue_is_the_popular_head_unless_users_are_few() -> None:
    popular = pd.DataFrame({"item_id": [1, 2, 3, 4], "pop_count": [5, 9, 9, 1]})
    assert ease_catalogue(popular, n_users=100, max_items=2).tolist() == [2, 3]
    assert ease_catalogue(popular, n_users=3, max_items=10).tolist() == [2, 3, 1, 4]


def test_a_context_fits_ease_on_the_history_before_its_cutoff(dask_client: Any) -> None:
    rows = [(u, i, 1) for u in range(10, 20) for i in (1, 2)] + [(1, 1, 5), (1, 3, 200)]
    events = log(rows)
    cutoff = T0 + 100 * DAY
    inputs = CutoffInputs(candidates=CandidatesSpec(), exclude_seen=True,
                          seen_window_days=None, k=2, ease_lambda=1.0)
    ctx = fit_context(events, cutoff, inputs, workflow_dir=None, retrieval_dir=None)
    assert ctx.ease is not None and sorted(ctx.ease.items) == [1, 2]  # item 3 came later
    history = pd.DataFrame(rows, columns=["user_id", "item_id", "day"])
    history = history[history["day"] < 100]
    x = history_matrix(history, np.sort(history["user_id"].unique()), ctx.ease.items)
    expected = closed_form(x.toarray().astype(np.float64), 1.0)
    got = ctx.ease.block(np.sort(history["user_id"].unique()), history).scores
    assert got == pytest.approx(expected, abs=1e-5)
