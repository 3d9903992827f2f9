"""XGBoost's boosting rounds as a progress measure: a training callback that, on the worker of
rank 0, publishes the rounds done of the maximum and the best validation score so far to the
stage listening on the client (``pipeline.progress.publish_measure``).

One event per training round would flood the scheduler when rounds take milliseconds, so events
are at least ``INTERVAL_S`` apart, and the last round is always sent when the training ends.
``best_round`` counts rounds from 1, as ``done`` does (XGBoost's ``best_iteration`` + 1).
"""

from __future__ import annotations

import math
import time
from typing import Any

from xgboost import collective
from xgboost.callback import TrainingCallback

from pipeline.progress import publish_measure

MEASURE = "boosting rounds"
INTERVAL_S = 0.25
# XGBoost's early stopping takes these metrics (and their ``@k`` forms) as better when higher.
_MAXIMIZED = ("auc", "aucpr", "pre", "map", "ndcg")


def maximized(metric: str) -> bool:
    """Whether a higher ``metric`` is better, by the rule XGBoost's early stopping applies."""
    return metric != "mape" and metric.startswith(_MAXIMIZED)


def latest_score(evals_log: TrainingCallback.EvalsLog) -> tuple[str, float] | None:
    """The last metric of the last evaluation set (the one early stopping watches) and its
    latest score; None without evaluation sets."""
    if not evals_log:
        return None
    metrics = evals_log[list(evals_log)[-1]]
    if not metrics:
        return None
    metric = list(metrics)[-1]
    score = metrics[metric][-1]
    return metric, float(score[0] if isinstance(score, tuple) else score)


class RoundsProgress(TrainingCallback):
    """Publishes ``boosting rounds`` done of ``rounds_max``, with the best score so far, from the
    worker of rank 0 (every worker sees the same rounds and the same global scores)."""

    def __init__(self, rounds_max: int, interval_s: float | None = None) -> None:
        super().__init__()
        self.rounds_max = rounds_max
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self.rounds = 0
        self.metric: str | None = None
        self.best: tuple[float, int] | None = None  # (score, round)
        self._sent_at = -math.inf

    def after_iteration(self, model: Any, epoch: int,
                        evals_log: TrainingCallback.EvalsLog) -> bool:
        if collective.get_rank() != 0:
            return False
        self.rounds = epoch + 1
        self._track_best(latest_score(evals_log))
        now = time.monotonic()
        if now - self._sent_at >= self.interval_s:
            self._sent_at = now
            self._publish(self.rounds_max)
        return False  # never stops the training

    def after_training(self, model: Any) -> Any:
        if self.rounds and collective.get_rank() == 0:
            # Stopped early, the training is over: its total is the rounds it did.
            self._publish(self.rounds)
        return model

    def _track_best(self, latest: tuple[str, float] | None) -> None:
        if latest is None:
            return
        metric, score = latest
        self.metric = metric
        if self.best is None or (score > self.best[0] if maximized(metric)
                                 else score < self.best[0]):
            self.best = (score, self.rounds)

    def _publish(self, total: int) -> None:
        fields: dict[str, Any] = {"rounds_max": self.rounds_max}
        note = ""
        if self.best is not None:
            score, best_round = self.best
            fields.update(metric=self.metric, best_score=score, best_round=best_round)
            note = f"best {self.metric} {score:.4f} at {best_round}"
        if total < self.rounds_max:
            note = ", ".join(t for t in (f"stopped early of {self.rounds_max}", note) if t)
        publish_measure(MEASURE, self.rounds, total, note, **fields)
