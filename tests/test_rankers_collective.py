"""XGBoost's communication group on a real Dask cluster: a worker stopped and resumed during
its start-up (``recv`` fails with EINTR, as on a CI host that pauses processes) is retried, and
other errors are not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.rankers.xgb_collective import is_startup_failure, root_cause

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX stop/continue signals")
def test_a_worker_paused_during_start_up_is_retried(tmp_path: Path) -> None:
    """See ``tests/scenario_paused_worker.py``; it runs in its own process and cluster."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.scenario_paused_worker", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)},
    )
    if done.returncode == -signal.SIGABRT:
        pytest.xfail("XGBoost's tracker aborted the scheduler's process during the failed "
                     "start-up (an XGBoost bug that no retry survives): " + done.stderr[-500:])
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    messages = result["retries"]
    assert messages, "the pauses did not interrupt the start-up: the test proves nothing"
    assert "attempt 1 of 3" in messages[0] and len(messages) == 1
    assert result["train_rows"] == 1600 and (Path(result["model"]) / "model.json").is_file()


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
