"""The logistic ranker: Newton's method on standardised features equals a direct solve, and a
saved model scores through ``load_scorer`` like any ranker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataError
from pipeline.rankers.logistic import fit_logistic
from pipeline.rankers.ranker import load_scorer


def _frame(n: int = 3000) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    p = 1 / (1 + np.exp(-(0.5 + x @ np.array([1.0, -0.5, 2.0]))))
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(
        label=(rng.random(n) < p).astype(np.float32))
    return frame, x


def test_logistic_regression_matches_a_direct_newton_solve(dask_client: Any) -> None:
    frame, x = _frame()
    n = len(frame)
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


def test_a_saved_logistic_model_scores_through_load_scorer(dask_client: Any,
                                                            tmp_path: Path) -> None:
    frame, _ = _frame(500)
    model = fit_logistic(dd.from_pandas(frame, npartitions=2), ["a", "b", "c"])
    model.save(tmp_path / "logistic")
    scorer = load_scorer(tmp_path / "logistic")
    assert scorer.kind == "logistic" and scorer.features == ["a", "b", "c"]
    assert scorer.score(frame) == pytest.approx(model.predict(frame))


def test_logistic_regression_rejects_a_non_binary_label(dask_client: Any) -> None:
    frame = pd.DataFrame({"a": [0.1, 0.2, 0.3], "label": [0.0, 2.0, 1.0]})
    with pytest.raises(DataError, match="'label' has 1 values other than 0 and 1"):
        fit_logistic(dd.from_pandas(frame, npartitions=1), ["a"])
