"""XGBoost's communication group on a real Dask cluster: a worker stopped and resumed during
its start-up (``recv`` fails with EINTR, as on a CI host that pauses processes) is retried, and
other errors are not."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import RankerSpec
from pipeline.train import collective
from pipeline.train.collective import is_startup_failure, root_cause
from pipeline.train.xgb import train_xgboost
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


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX stop/continue signals")
def test_a_worker_paused_during_start_up_is_retried(dask_client: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker left waiting by its failed peer gives up after the collective timeout.
    monkeypatch.setattr(collective, "COLLECTIVE_TIMEOUT_S", 5)
    spec = RankerSpec(num_boost_round=20, early_stopping_rounds=5,
                      params={"max_depth": 2, "eta": 0.3})
    rows = dask_client.persist(ranker_rows())
    pids = dask_client.run(os.getpid)
    watch = _RetryWatch()
    log = logging.getLogger(collective.__name__)
    log.addHandler(watch)
    # Pause one worker until the first attempt has failed; the retry then runs undisturbed.
    pausing = _pause_until(pids[sorted(pids)[-1]], watch.retried, limit_s=60)
    try:
        report = train_xgboost(dask_client, rows, FEATURES, spec, tmp_path / "model")
    finally:
        watch.retried.set()
        pausing.join()
        log.removeHandler(watch)
    assert watch.messages, "the pauses did not interrupt the start-up: the test proves nothing"
    assert "attempt 1 of 3" in watch.messages[0] and len(watch.messages) == 1
    assert report.train_rows == 1600 and (tmp_path / "model" / "model.json").is_file()


def test_only_start_up_failures_count_as_transient() -> None:
    interrupted = RuntimeError(
        "[10:57:52] result.cc:83: [comm.cc:220|10:57:52]:\n\n"
        "- [comm.cc:220|10:57:52]: Failed to bootstrap the communication group.\n"
        "- [comm.cc:239|10:57:52]: Bootstrap failed.\n"
        "- [socket.h:79|10:57:52]: recv Interrupted system call\n"
        "Stack trace:\n  [bt] (0) libxgboost.so(+0x11031e)")
    assert is_startup_failure(interrupted)
    assert root_cause(interrupted) == "[socket.h:79|10:57:52]: recv Interrupted system call"
    assert not is_startup_failure(ValueError("label must be in [0, 1] for logistic loss"))
