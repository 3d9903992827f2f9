"""The paused-worker scenario of ``test_rankers_collective``, run in a process of its own.

``python -m tests.scenario_paused_worker OUT``: starts its own two-worker LocalCluster, stops and
resumes one worker every few milliseconds until XGBoost's first attempt to form its
communication group fails, lets ``train_xgboost`` retry, and prints one JSON line: the retry
warnings logged, the rows trained and the model's folder. A training the pauses did not
interrupt is tried again, up to ``TRIALS`` times.

Its own process because XGBoost's tracker runs in the scheduler's process (here, this one) and
XGBoost 3.2's tracker has aborted that process (SIGABRT) during such a failed start-up: the
test suite must survive that.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from distributed import Client, LocalCluster

from pipeline.cluster import worker_malloc_settings
from pipeline.config import RankerSpec
from pipeline.rankers import xgb_collective as collective
from pipeline.rankers.xgb import train_xgboost
from tests.helpers import FEATURES, ranker_rows


class _RetryWatch(logging.Handler):
    """Sets ``retried`` when the trainer logs that it starts again."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retried = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "starting again" in record.getMessage():
            self.messages.append(record.getMessage())
            self.retried.set()


def _pause_until(pid: int, done: threading.Event, limit_s: float) -> threading.Thread:
    """Stop and continue process ``pid`` every few milliseconds until ``done`` (or ``limit_s``):
    what a debugger or profiler attaching (ptrace), a cgroup freezer or a paused VM does to it.
    On Linux a ``recv`` with a receive timeout then fails with EINTR, with no signal handler."""

    def pause() -> None:
        end = time.monotonic() + limit_s
        while not done.is_set() and time.monotonic() < end:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.001)
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.002)

    thread = threading.Thread(target=pause, name="pause-worker", daemon=True)
    thread.start()
    return thread


TRIALS = 5
"""Trainings tried until the pauses interrupt a start-up (a pause can miss the short window)."""


def main(out: Path) -> None:
    # The worker left waiting by its failed peer gives up after the collective timeout.
    collective.COLLECTIVE_TIMEOUT_S = 5
    spec = RankerSpec(num_boost_round=20, early_stopping_rounds=5,
                      params={"max_depth": 2, "eta": 0.3})
    with worker_malloc_settings():
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               memory_limit="3GiB", dashboard_address=None)
    log = logging.getLogger(collective.__name__)
    with cluster, Client(cluster) as client:
        rows = client.persist(ranker_rows())
        pids = client.run(os.getpid)
        for trial in range(1, TRIALS + 1):
            watch = _RetryWatch()
            log.addHandler(watch)
            # Pause one worker until the first attempt has failed; the retry runs undisturbed.
            pausing = _pause_until(pids[sorted(pids)[-1]], watch.retried, limit_s=60)
            try:
                report = train_xgboost(client, rows, FEATURES, spec, out / f"model-{trial}")
            finally:
                watch.retried.set()
                pausing.join()
                log.removeHandler(watch)
            if watch.messages:
                break
    print(json.dumps({"retries": watch.messages, "train_rows": report.train_rows,
                      "trial": trial, "model": str(out / f"model-{trial}")}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
