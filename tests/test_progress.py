"""Stage progress from measured work on a real Dask cluster: XGBoost's rounds reach the client's
``Progress`` from the worker of rank 0, a stage's own measure gives the ETA instead of task
counts, the JSON log carries the numbers, and nothing is sent when nobody listens."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import dask.array as da
import numpy as np
import pytest

from pipeline.logs import JsonFormatter
from pipeline.progress import TOPIC, Measure, Progress, listening, publish_measure
from pipeline.rankers import xgb_progress
from pipeline.rankers.xgb import pin_partitions
from pipeline.rankers.xgb_collective import train_on_cluster
from pipeline.rankers.xgb_progress import MEASURE, RoundsProgress, maximized
from tests.helpers import FEATURES, ranker_rows


class Recording(Progress):
    """A ``Progress`` that keeps every measure it is given, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[str, float, float, dict[str, Any]]] = []

    def measure(self, name: str, done: float, total: float, note: str = "",
                **fields: Any) -> None:
        self.seen.append((name, done, total, {"note": note, **fields}))
        super().measure(name, done, total, note, **fields)

    def wait_for(self, done: float, timeout_s: float = 20.0) -> None:
        """Worker events arrive after the training returns: wait for the one with ``done``."""
        deadline = time.monotonic() + timeout_s
        while not any(seen[1] == done for seen in self.seen):
            assert time.monotonic() < deadline, f"no event with done={done}: {self.seen[-3:]}"
            time.sleep(0.05)


def _train(client: Any, rounds: int, **kwargs: Any) -> Any:
    """A binary ranker on 2,000 rows, the two partitions on the two workers (two ranks)."""
    import xgboost.dask as dxgb

    rows = pin_partitions(client, ranker_rows())
    train, valid = rows[~rows["is_valid"]], rows[rows["is_valid"]]
    dtrain = dxgb.DaskDMatrix(client, train[FEATURES], train["label"])
    dvalid = dxgb.DaskDMatrix(client, valid[FEATURES], valid["label"])
    params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"],
              "max_depth": 2, "eta": 0.3, "nthread": 1}
    return train_on_cluster(client, params, dtrain, num_boost_round=rounds,
                            evals=[(dvalid, "valid")], verbose_eval=False, **kwargs)


def test_training_rounds_reach_the_client_from_rank_0_only(
        dask_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xgb_progress, "INTERVAL_S", 0.0)  # every round, to count them
    progress = Recording(dask_client, tty=False, interval=60)
    with progress.stage("train"):
        assert listening(dask_client)
        output = _train(dask_client, rounds=12)
        progress.wait_for(12)
    assert not listening(dask_client), "the stage's subscription outlived it"
    rounds = [(done, total) for name, done, total, _ in progress.seen if name == MEASURE]
    # One event per round (two workers trained, one published), then the training's end.
    assert rounds == [(n, 12) for n in range(1, 13)] + [(12, 12)]
    auc = np.asarray(output["history"]["valid"]["auc"])
    last = progress.seen[-1][3]
    assert last["metric"] == "auc" and last["rounds_max"] == 12
    assert last["best_score"] == pytest.approx(auc.max())
    assert last["best_round"] == int(np.argmax(auc)) + 1
    assert f"best auc {auc.max():.4f} at {last['best_round']}" == last["note"]


def test_the_callers_callbacks_still_run_beside_the_progress(dask_client: Any) -> None:
    from xgboost.callback import EarlyStopping

    progress = Recording(dask_client, tty=False, interval=60)
    with progress.stage("train"):
        output = _train(dask_client, rounds=200,
                        callbacks=[EarlyStopping(rounds=2, metric_name="logloss")])
        rounds = output["booster"].num_boosted_rounds()
        assert rounds < 200
        progress.wait_for(rounds)
    name, done, total, fields = progress.seen[-1]
    assert (name, done, total) == (MEASURE, rounds, rounds) and fields["rounds_max"] == 200
    assert fields["note"].startswith("stopped early of 200, best auc")


def test_a_stage_measure_gives_the_eta_instead_of_task_counts(
        dask_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress(dask_client, tty=False, interval=0.05)
    with caplog.at_level(logging.INFO, logger="recpipe.progress"), \
            progress.stage("features", rows=400, partitions=4):
        progress.measure("partitions", 0, 4)
        for part in range(4):
            da.ones(40, chunks=4).map_blocks(_slow, chunks=(4,)).sum().compute()
            progress.measure("partitions", part + 1, 4)
        time.sleep(0.2)
    records = [r for r in caplog.records if r.name == "recpipe.progress"]
    assert records and all(r.measure == "partitions" for r in records)
    assert all(r.tasks_done is not None and r.tasks_total >= r.tasks_done for r in records)
    assert all(r.eta_seconds is not None for r in records if r.done > 0)
    last = records[-1]
    assert (last.stage, last.done, last.total, last.eta_seconds) == ("features", 4, 4, 0.0)
    assert last.getMessage() == ("stage features: 4/4 partitions (100%), ETA 0:00:00, "
                                 "400 rows, 4 partitions")

    tty = io.StringIO()
    drawing = Progress(dask_client, stream=tty, tty=True, interval=0.05)
    with drawing.stage("features"):
        drawing.measure("partitions", 0, 64)
        time.sleep(0.1)
        drawing.measure("partitions", 34, 64, note="users 0-9999")
        time.sleep(0.2)
    assert "\r\033[K  features   [##########          ] 34/64 partitions  53%  ETA 0:00:0" \
        in tty.getvalue() and "  users 0-9999" in tty.getvalue()


def _slow(x: Any) -> Any:
    time.sleep(0.01)
    return x


def test_eta_from_the_measured_rate_restarts_with_new_work() -> None:
    # 20 partitions in the 20 s since the first report, 70 left, reported 5 s ago.
    seen = Measure("partitions", 30, 100, since=0.0, done_since=10, updated=20.0)
    assert seen.eta(now=25.0) == pytest.approx(65.0)
    assert Measure("partitions", 10, 100, since=3.0, done_since=10, updated=3.0).eta(9) is None
    assert Measure("partitions", 100, 100).eta(now=1.0) == 0.0
    assert Measure("partitions", 31, 100).continues(seen)
    assert not Measure("partitions", 2, 100).continues(seen)  # the next fold's training
    assert not Measure("partitions", 31, 101).continues(seen)
    assert not Measure("rows", 31, 100).continues(seen)


def test_json_log_records_carry_the_rounds_and_the_best_score(dask_client: Any) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("recpipe.progress")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    progress = Recording(dask_client, tty=False, interval=0.1)
    try:
        with progress.stage("train", rows=2000, partitions=2):
            _train(dask_client, rounds=8)
            progress.wait_for(8)
            time.sleep(0.3)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    last = lines[-1]
    assert {"stage": "train", "measure": MEASURE, "done": 8, "total": 8, "eta_seconds": 0.0,
            "metric": "auc", "rounds_max": 8, "rows": 2000, "partitions": 2}.items() \
        <= last.items()
    assert isinstance(last["best_score"], float) and 1 <= last["best_round"] <= 8
    assert last["tasks_done"] is not None and "tasks_total" in last
    assert last["message"].startswith("stage train: 8/8 boosting rounds (100%, best auc ")


def test_nothing_is_sent_or_shown_without_a_listening_stage(dask_client: Any) -> None:
    assert not listening(dask_client)
    before = len(dask_client.get_events(TOPIC))
    stream = io.StringIO()
    progress = Progress(None, stream=stream, tty=True, interval=0.01)
    with progress.stage("train"):
        progress.measure("partitions", 1, 2)
        output = _train(dask_client, rounds=5)
    Progress(dask_client, stream=stream, tty=True).measure("rows", 1, 2)  # outside a stage
    assert output["booster"].num_boosted_rounds() == 5
    time.sleep(0.3)
    assert len(dask_client.get_events(TOPIC)) == before
    assert stream.getvalue() == ""
    assert not publish_measure("rows", 1, 2), "published outside a Dask worker"


def test_rounds_are_sent_at_most_every_interval_and_at_the_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[float, float, str]] = []
    monkeypatch.setattr(xgb_progress, "publish_measure",
                        lambda name, done, total, note, **f: sent.append((done, total, note)))
    callback = RoundsProgress(rounds_max=10, interval_s=3600)
    log: dict[str, dict[str, list[float]]] = {"valid": {"auc": [], "logloss": []}}
    for epoch, loss in enumerate([0.6, 0.5, 0.55, 0.52]):
        log["valid"]["auc"].append(0.7)
        log["valid"]["logloss"].append(loss)
        callback.after_iteration(None, epoch, log)
    callback.after_training(None)
    assert sent == [(1, 10, "best logloss 0.6000 at 1"),
                    (4, 4, "stopped early of 10, best logloss 0.5000 at 2")]
    assert maximized("ndcg@10") and maximized("auc") and not maximized("mape")
    assert not maximized("logloss")
