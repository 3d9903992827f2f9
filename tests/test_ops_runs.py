"""Run bookkeeping for schedulers: the per-workflow run lock, exit codes, JSON logs, progress."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dask.array as da
import pytest

from pipeline.errors import RunLockedError
from pipeline.logs import JsonFormatter
from pipeline.progress import Progress
from pipeline.runlock import RunLock
from tests.helpers import ROOT, recpipe, workflow_file, write_synthetic_log


def test_second_run_of_a_workflow_exits_75_while_the_first_holds_the_lock(
        tmp_path: Path, redis_url: str) -> None:
    data = write_synthetic_log(tmp_path / "data", users=20)
    wf = workflow_file(tmp_path / "w.yaml", data, tmp_path / "runs", "locked")
    with RunLock(tmp_path / "runs" / "locked", date="2026-01-01"):
        result = recpipe("run", str(wf), "--date", "2026-01-02",
                         env={**os.environ, "REDIS_URL": redis_url})
    assert result.returncode == 75, result.stderr
    assert "another run of this workflow holds" in result.stderr
    assert f"pid={os.getpid()}" in result.stderr.replace('"pid": ', "pid=")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs" / "locked" / "2026-01-02").exists(), "it started working"


def test_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from pipeline.runlock import RunLock; lock = RunLock(Path(sys.argv[1])).__enter__(); "
         "print('held', flush=True); time.sleep(600)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLockedError, match=f"'pid': {holder.pid}|\"pid\": {holder.pid}"), \
            RunLock(tmp_path):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert lock.path.read_text() == "", "a released lock still names its holder"


def test_json_log_lines_carry_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("recpipe.test-json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("stage %s: done", "train", extra={"stage": "train", "seconds": 1.5})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "stage train: done" and first["level"] == "INFO"
    assert first["stage"] == "train" and first["seconds"] == 1.5
    assert "ValueError: boom" in second["exc_info"]


def _slow_sum(x: Any) -> Any:
    time.sleep(0.02)
    return x.sum(keepdims=True)


def test_progress_counts_the_stage_tasks_on_a_real_cluster(
        dask_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress(dask_client, tty=False, interval=0.2)
    array = da.ones(400, chunks=4).map_blocks(_slow_sum, chunks=(1,))  # 100 tasks of 20 ms
    with caplog.at_level(logging.INFO, logger="recpipe.progress"), \
            progress.stage("features", rows=400, partitions=100):
        assert int(array.sum().compute()) == 400
        time.sleep(0.3)
    records = [r for r in caplog.records if r.name == "recpipe.progress"]
    assert records, "no progress line in plain mode"
    last = records[-1]
    assert last.stage == "features" and last.rows == 400 and last.partitions == 100
    assert last.tasks_total >= 100 and last.tasks_done == last.tasks_total
    assert "400 rows, 100 partitions" in last.getMessage()

    tty = io.StringIO()
    progress = Progress(dask_client, stream=tty, tty=True, interval=0.05)
    with progress.stage("train"):
        da.ones(200, chunks=2).map_blocks(_slow_sum, chunks=(1,)).sum().compute()
    drawn = tty.getvalue()
    assert "\r\033[K  train" in drawn and "tasks" in drawn and "ETA" in drawn
    assert drawn.endswith("\r\033[K"), "the progress line is not cleared after the stage"


def test_log_json_run_emits_only_json_lines(tmp_path: Path) -> None:
    wf = workflow_file(tmp_path / "w.yaml", tmp_path / "absent", tmp_path / "runs", "j")
    result = recpipe("--log-json", "run", str(wf), "--date", "2026-01-01",
                     env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 3
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    error = lines[-1]
    assert error["level"] == "ERROR" and error["exit_code"] == 3
    assert "127.0.0.1:1" in error["message"]


def _night(runs: Path, date: str, status: str, last_full: str | None = None) -> None:
    (runs / date).mkdir(parents=True)
    data: dict[str, Any] = {"status": status, "stages": {}}
    if last_full:
        data["incremental"] = {"mode": "incremental", "last_full": last_full}
    (runs / date / "manifest.json").write_text(json.dumps(data))


def test_night_plan_builds_on_the_last_good_night_and_refits_weekly(tmp_path: Path) -> None:
    from pipeline.config import parse_workflow
    from pipeline.incremental import plan_night

    raw = {"name": "inc", "data": {"interactions": {"path": "p", "columns": {
        "user": "u", "item": "i", "timestamp": "t"}}},
           "run": {"dir": str(tmp_path), "incremental": True, "full_refit_every_days": 7}}
    spec = parse_workflow(raw)
    runs = tmp_path / "inc"
    assert plan_night(spec, runs / "2026-05-01", "2026-05-01").mode == "full"  # nothing yet
    _night(runs, "2026-05-01", "done")
    _night(runs, "2026-05-02", "done", last_full="2026-05-01")
    _night(runs, "2026-05-03", "failed", last_full="2026-05-01")
    plan = plan_night(spec, runs / "2026-05-04", "2026-05-04")
    assert plan.mode == "incremental" and plan.base == str(runs / "2026-05-02")
    assert plan.last_full == "2026-05-01"
    weekly = plan_night(spec, runs / "2026-05-08", "2026-05-08")
    assert weekly.mode == "full" and "7" in weekly.reason and weekly.last_full == "2026-05-08"
    off = parse_workflow({**raw, "run": {"dir": str(tmp_path)}})
    assert plan_night(off, runs / "2026-05-04", "2026-05-04").mode == "full"
