"""Logistic regression, the linear baseline ranker: fitted by Newton's method (IRLS) with an L2
penalty on standardised features, on the same training rows as the GBDT. Each iteration is one
distributed pass: every partition returns its gradient and ``d x d`` Hessian, summed in a tree;
only those reach the client. Missing values become the feature's mean (0 after standardising).
Saved as its ranker card (JSON), so ``load_scorer`` can publish it like any ranker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.errors import DataError
from pipeline.rankers.card import LOGISTIC, ranker_card, write_ranker_card


@dataclass(frozen=True)
class LogisticModel:
    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # intercept first
    iterations: int
    kind: str = LOGISTIC

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame[self.features].to_numpy(dtype=np.float64, na_value=np.nan)
        x = (x - self.mean) / self.scale
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        return np.hstack([np.ones((len(x), 1)), x])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Click probabilities for the rows of ``frame``."""
        return (1.0 / (1.0 + np.exp(-(self.design(frame) @ self.coef)))).astype(np.float32)

    def score(self, encoded: pd.DataFrame) -> np.ndarray:
        """The ``Scorer`` protocol: one score per row (the click probability)."""
        return self.predict(encoded)

    def save(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        write_ranker_card(out, {"kind": LOGISTIC, "features": self.features,
                                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                                "coef": self.coef.tolist(), "iterations": self.iterations})

    @classmethod
    def load(cls, out: Path) -> LogisticModel:
        card = ranker_card(out)
        return cls(card["features"], np.array(card["mean"]), np.array(card["scale"]),
                   np.array(card["coef"]), int(card["iterations"]))


def _newton_terms(frame: pd.DataFrame, model: LogisticModel,
                  label: str) -> tuple[np.ndarray, np.ndarray, float]:
    x = model.design(frame)
    y = frame[label].to_numpy(dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-(x @ model.coef)))
    w = p * (1.0 - p)
    eps = 1e-12
    loss = -float(np.sum(y * np.log(p + eps) + (1.0 - y) * np.log(1.0 - p + eps)))
    return x.T @ (y - p), (x * w[:, None]).T @ x, loss


def _add(a: tuple, b: tuple) -> tuple:
    return tuple(u + v for u, v in zip(a, b, strict=True))


def _tree_sum(parts: list) -> object:
    while len(parts) > 1:
        pairs = [dask.delayed(_add)(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0]


def fit_logistic(rows: dd.DataFrame, features: list[str], *, label: str = "label",
                 l2: float = 1.0, max_iter: int = 25, tol: float = 1e-6) -> LogisticModel:
    """Fit on ``rows`` (persist them first: one pass per iteration)."""
    if not features:
        raise DataError("logistic regression needs at least one feature column")
    stats = rows[features].astype("f8")
    mean, std, n, bad = dask.compute(stats.mean(), stats.std(), rows.shape[0],
                                     ((rows[label] != 0) & (rows[label] != 1)).sum())
    if int(bad):
        raise DataError(f"logistic regression: column '{label}' has {int(bad)} values other "
                        "than 0 and 1; binarise the label (label.min_value) first")
    if int(n) == 0:
        raise DataError("logistic regression: no training rows")
    scale = std.fillna(1.0).to_numpy(dtype=np.float64, copy=True)
    scale[scale == 0] = 1.0
    model = LogisticModel(features, mean.fillna(0.0).to_numpy(), scale,
                          np.zeros(len(features) + 1), 0)
    penalty = np.full(len(features) + 1, l2)
    penalty[0] = 0.0
    parts = rows[[*features, label]].to_delayed()
    previous = np.inf
    for it in range(1, max_iter + 1):
        grad, hess, loss = dask.compute(
            _tree_sum([dask.delayed(_newton_terms)(p, model, label) for p in parts]))[0]
        grad = grad - penalty * model.coef
        hess = hess + np.diag(penalty) + 1e-9 * np.eye(len(penalty))
        step = np.linalg.solve(hess, grad)
        model = LogisticModel(features, model.mean, model.scale, model.coef + step, it)
        if abs(previous - loss) <= tol * max(1.0, abs(loss)) or np.max(np.abs(step)) < tol:
            break
        previous = loss
    return model
