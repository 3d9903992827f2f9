"""Baselines: given a small log, expect these lists; closed forms equal a direct computation."""

from __future__ import annotations

from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pipeline.candidates.popularity import DAY, fit_popularity
from pipeline.errors import DataError
from pipeline.evaluate.baselines import (
    fit_itemknn,
    fit_logistic,
    popularity_scorer,
    repeat_lists,
    score_lists,
)
from pipeline.evaluate.baselines.common import ItemScorer, top_k_rows
from pipeline.evaluate.baselines.ease import ease_weights, fit_ease, widen_search
from pipeline.evaluate.baselines.itemknn import cosine_knn

T0 = 1_700_000_000
CUTOFF = T0 + 100 * DAY


def log(rows: list[tuple[int, int, float]]) -> dd.DataFrame:
    """(user, item, day) events, two partitions split by user (as the runner writes them)."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "day"])
    frame = pd.DataFrame({"user_id": frame["user_id"].astype("int64"),
                          "item_id": frame["item_id"].astype("int64"),
                          "timestamp": (T0 + frame["day"] * DAY).astype("int64")})
    parts = [dask.delayed(frame[frame["user_id"] % 2 == p].reset_index(drop=True))
             for p in (0, 1)]
    return dd.from_delayed(parts, meta=frame.iloc[:0])


def as_lists(lists: dd.DataFrame) -> dict[int, list[int]]:
    frame = lists.compute().sort_values(["user_id", "rank"])
    return {int(u): g["item_id"].tolist() for u, g in frame.groupby("user_id")}


# Item 1: popular long ago; item 2: popular recently; users 1-4 active in the holdout (day 100+).
EVENTS = [
    (10, 1, 1), (11, 1, 2), (12, 1, 3), (13, 1, 4), (14, 1, 5),
    (10, 2, 95), (11, 2, 96), (12, 2, 97),
    (1, 3, 50), (1, 3, 60), (1, 4, 70), (1, 5, 99),
    (2, 1, 98), (3, 5, 98),
    (1, 9, 101), (2, 9, 101), (3, 9, 102), (4, 9, 103),
]


def test_popularity_global_and_recent_rank_differently(dask_client: Any) -> None:
    events = log(EVENTS)
    popular = fit_popularity(events, CUTOFF, recent_days=30).items
    end = CUTOFF + 10 * DAY
    recent = as_lists(score_lists(events, popularity_scorer(popular, "recent"), CUTOFF, end,
                                  2, exclude_seen=False))
    overall = as_lists(score_lists(events, popularity_scorer(popular, "global"), CUTOFF, end,
                                   2, exclude_seen=False))
    assert set(recent) == set(overall) == {1, 2, 3, 4}  # users active after the cutoff
    assert overall[4] == [1, 2]  # item 1: 6 events in all, item 2: 3
    assert recent[4] == [2, 5]  # last 30 days: item 2 three times, item 5 twice
    seen_excluded = as_lists(score_lists(events, popularity_scorer(popular, "global"), CUTOFF,
                                         end, 2, exclude_seen=True))
    assert seen_excluded[2] == [2, 3]  # user 2 saw item 1; items 3 and 5 tie on 2: lower id


def test_repeat_lists_the_users_most_frequent_items(dask_client: Any) -> None:
    lists = as_lists(repeat_lists(log(EVENTS), CUTOFF, CUTOFF + 10 * DAY, 3))
    assert lists[1] == [3, 5, 4]  # item 3 twice; then the most recent of the singles
    assert lists[2] == [1] and lists[3] == [5]
    assert 4 not in lists  # no history


def test_cosine_knn_keeps_the_best_neighbours() -> None:
    x = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 0, 1]], dtype=np.float64)
    gram = x.T @ x
    norms = np.sqrt(np.diag(gram))
    cosine = gram / np.outer(norms, norms)
    np.fill_diagonal(cosine, 0.0)
    got = cosine_knn(sp.csr_matrix(gram), neighbors=2).toarray()
    for i in range(4):
        nonzero = np.flatnonzero(got[i])
        assert len(nonzero) == 2
        expected = np.lexsort((np.arange(4), -cosine[i]))[:2]
        assert set(nonzero) == set(expected)
        assert got[i, nonzero] == pytest.approx(cosine[i, nonzero])


def test_itemknn_recommends_the_neighbours_of_the_users_items(dask_client: Any) -> None:
    # items 1 and 2 always together; 3 and 4 always together
    rows = [(u, i, 1) for u in range(10, 20) for i in (1, 2)]
    rows += [(u, i, 1) for u in range(20, 30) for i in (3, 4)]
    rows += [(1, 1, 5), (2, 3, 5), (1, 7, 200), (2, 7, 200)]
    events = log(rows)
    knn = fit_itemknn(events, CUTOFF, np.array([1, 2, 3, 4]), neighbors=1)
    lists = as_lists(score_lists(events, knn, CUTOFF, None, 1, exclude_seen=True))
    assert lists[1] == [2] and lists[2] == [4]


def test_ease_weights_equal_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 6)) < 0.4).astype(np.float64)
    lam = 5.0
    b = ease_weights(sp.csr_matrix(x.T @ x), lam)
    p = np.linalg.inv(x.T @ x + lam * np.eye(6))
    expected = np.eye(6) - p / np.diag(p)
    assert np.diag(b) == pytest.approx(np.zeros(6), abs=1e-6)
    assert b == pytest.approx(expected.astype(np.float32), abs=1e-5)
    # B minimises ||X - XB||² + λ||B||² under diag(B) = 0: a column's gradient is zero off
    # the diagonal.
    grad = (x.T @ x + lam * np.eye(6)) @ b.astype(np.float64) - x.T @ x
    off = ~np.eye(6, dtype=bool)
    assert np.abs(grad[off]).max() < 1e-4


def test_fit_ease_scores_with_the_distributed_gram(dask_client: Any) -> None:
    rows = [(u, i, 1) for u in range(10, 20) for i in (1, 2)] + [(1, 1, 5)]
    events = log(rows)
    model = fit_ease(events, CUTOFF, np.array([1, 2, 3]), lam=1.0)
    x = np.zeros((11, 3))
    x[:10, :2] = 1
    x[10, 0] = 1
    assert model.weights == pytest.approx(ease_weights(x.T @ x, 1.0), abs=1e-6)
    assert as_lists(score_lists(events, model, CUTOFF, None, 1, True))[1] == [2]


def test_widen_search_extends_the_grid_until_the_score_stops_improving() -> None:
    calls: list[float] = []

    def peaked(lam: float) -> float:  # best at 8100
        calls.append(lam)
        return -abs(np.log(lam) - np.log(8100.0))

    best, tried = widen_search(peaked, (100.0, 300.0, 900.0), factor=3.0)
    assert best == pytest.approx(8100.0)
    assert sorted(tried) == pytest.approx([100, 300, 900, 2700, 8100, 24300])
    best, tried = widen_search(peaked, (2700.0, 8100.0, 24300.0))
    assert best == pytest.approx(8100.0) and len(tried) == 3  # interior best: no widening


def test_top_k_rows_breaks_ties_by_index_and_skips_excluded() -> None:
    scores = np.array([[1.0, 3.0, 3.0, -np.inf], [-np.inf, -np.inf, 2.0, -np.inf]])
    best, valid = top_k_rows(scores, 3)
    assert best[0].tolist() == [1, 2, 0]
    assert best[1][valid[1]].tolist() == [2]


def test_logistic_regression_matches_a_direct_newton_solve(dask_client: Any) -> None:
    rng = np.random.default_rng(1)
    n = 3000
    x = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    p = 1 / (1 + np.exp(-(0.5 + x @ np.array([1.0, -0.5, 2.0]))))
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(
        label=(rng.random(n) < p).astype(np.float32))
    model = fit_logistic(dd.from_pandas(frame, npartitions=3), ["a", "b", "c"], l2=1.0)
    z = np.hstack([np.ones((n, 1)), (x - x.mean(0)) / x.std(0, ddof=1)])
    w = np.zeros(4)
    penalty = np.diag([0.0, 1.0, 1.0, 1.0])
    for _ in range(30):
        q = 1 / (1 + np.exp(-z @ w))
        w = w + np.linalg.solve((z * (q * (1 - q))[:, None]).T @ z + penalty,
                                z.T @ (frame["label"].to_numpy() - q) - penalty @ w)
    assert model.coef == pytest.approx(w, abs=1e-4)
    assert model.predict(frame) == pytest.approx(1 / (1 + np.exp(-z @ w)), abs=1e-5)


def test_logistic_regression_rejects_a_non_binary_label(dask_client: Any) -> None:
    frame = pd.DataFrame({"a": [0.1, 0.2, 0.3], "label": [0.0, 2.0, 1.0]})
    with pytest.raises(DataError, match="'label' has 1 values other than 0 and 1"):
        fit_logistic(dd.from_pandas(frame, npartitions=1), ["a"])


def test_item_scorer_vector_scores_everyone_the_same() -> None:
    scorer = ItemScorer("p", np.array([5, 6]), "vector", np.array([2.0, 1.0]))
    assert scorer.scores(sp.csr_matrix((3, 2))).tolist() == [[2.0, 1.0]] * 3
