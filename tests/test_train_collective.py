"""XGBoost's communication group on a real Dask cluster: a signal that interrupts its start-up
(``recv`` fails with EINTR) is retried, and other errors are not."""

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

STORM_SIGNAL = signal.SIGUSR1


def _start_signal_storm(seconds: float, period_s: float = 0.002) -> None:
    """On a worker's event-loop (main) thread: give ``STORM_SIGNAL`` a no-op handler, then
    send it to every other thread of the process for ``seconds``, as a stray signal would."""
    import ctypes

    signal.signal(STORM_SIGNAL, lambda *_: None)
    libc = ctypes.CDLL(None, use_errno=True)
    tgkill = 234  # x86-64 syscall number; the test is skipped elsewhere

    def storm() -> None:
        pid, me = os.getpid(), threading.get_native_id()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for tid in os.listdir(f"/proc/{pid}/task"):
                if int(tid) != me:
                    libc.syscall(tgkill, pid, int(tid), STORM_SIGNAL)
            time.sleep(period_s)

    threading.Thread(target=storm, name="signal-storm", daemon=True).start()


def _restore_default_handler() -> None:
    signal.signal(STORM_SIGNAL, signal.SIG_DFL)


@pytest.mark.skipif(os.uname().machine != "x86_64" or not os.path.isdir("/proc/self/task"),
                    reason="sends signals to single threads with Linux x86-64's tgkill")
def test_a_signal_during_start_up_is_retried(dask_client: Any, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker left waiting by its failed peer gives up after the collective timeout.
    monkeypatch.setattr(collective, "COLLECTIVE_TIMEOUT_S", 5)
    spec = RankerSpec(num_boost_round=20, early_stopping_rounds=5,
                      params={"max_depth": 2, "eta": 0.3})
    rows = dask_client.persist(ranker_rows())
    one_worker = sorted(dask_client.scheduler_info(n_workers=-1)["workers"])[-1]
    # The storm outlasts the first attempt (which fails within a second) but not the backoff.
    dask_client.run(_start_signal_storm, 0.6, workers=[one_worker])
    try:
        with caplog.at_level(logging.WARNING, logger="pipeline.train.collective"):
            report = train_xgboost(dask_client, rows, FEATURES, spec, tmp_path / "model")
    finally:
        time.sleep(0.7)  # the storm thread has stopped before the handler goes
        dask_client.run(_restore_default_handler, workers=[one_worker])
    retries = [r.getMessage() for r in caplog.records if "starting again" in r.getMessage()]
    assert retries, "the storm did not interrupt the start-up: the test proves nothing"
    assert "Interrupted system call" in retries[0]
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
