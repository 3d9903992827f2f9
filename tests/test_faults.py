"""Faults, really done on loopback: a Dask worker killed mid-stage, the ``recpipe run`` process
killed mid-run, Redis killed mid-publish. Runs go through the command line against a real
``dask scheduler`` and ``dask worker`` processes started from the command line (address mode)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import redis

from tests.helpers import ROOT, free_port, recpipe, wait_ready, workflow_file, write_synthetic_log

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
DATE = "2026-03-01"


@dataclass
class CliCluster:
    """A scheduler and worker processes started with the ``dask`` command."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    log_dir: Path
    started: int = 0

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.started += 1  # worker names must be unique on the scheduler
        n = self.started
        # --no-nanny: a SIGKILL then kills the worker itself, not a nanny that would restart it
        proc = subprocess.Popen(
            [str(BIN / "dask"), "worker", self.address, "--nthreads", "1", "--no-nanny",
             "--memory-limit", "2GiB", "--no-dashboard", "--name", f"w{n}",
             "--local-directory", str(self.log_dir / f"w{n}")],
            stdout=subprocess.DEVNULL, stderr=open(self.log_dir / f"w{n}.log", "wb"), cwd=ROOT)  # noqa: SIM115
        self.workers.append(proc)
        return proc

    def n_workers(self) -> int:
        from distributed import Client

        with Client(self.address, timeout="10s") as client:
            return len(client.scheduler_info()["workers"])

    def wait_for(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout="10s") as client:
            client.wait_for_workers(n, timeout=timeout)


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    log_dir = tmp_path_factory.mktemp("dask")
    port = free_port()
    scheduler = subprocess.Popen(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=open(log_dir / "scheduler.log", "wb"), cwd=ROOT)  # noqa: SIM115
    cluster = CliCluster(f"tcp://127.0.0.1:{port}", scheduler, [], log_dir)
    try:
        for _ in range(2):
            cluster.start_worker()
        cluster.wait_for(2)
        yield cluster
    finally:
        for proc in [*cluster.workers, scheduler]:
            _stop(proc)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_log(tmp_path_factory.mktemp("data"), users=80, days=60)


def make_workflow(tmp: Path, data: Path, cluster: CliCluster, name: str) -> Path:
    return workflow_file(tmp / f"{name}.yaml", data, tmp / "runs", name,
                         split={"holdout_days": 7, "label_days": 7, "label_windows": 2},
                         ranker={"num_boost_round": 15, "early_stopping_rounds": 5},
                         evaluation={"k": 10, "baselines": ["popularity"]},
                         cluster={"kind": "address", "address": cluster.address})


def manifest_of(wf: Path, name: str, date: str = DATE) -> dict[str, Any]:
    path = wf.parent / "runs" / name / date / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def stage_status(wf: Path, name: str, stage: str) -> str | None:
    return manifest_of(wf, name).get("stages", {}).get(stage, {}).get("status")


def run_cli(wf: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return recpipe("run", str(wf), "--date", DATE, *args, env={**os.environ,
                                                               "REDIS_URL": redis_url})


def start_run(wf: Path, redis_url: str) -> subprocess.Popen[str]:
    """``recpipe run`` in its own session, so the test can kill it and only it."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", str(wf), "--date", DATE],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url}, start_new_session=True)


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[str], what: str,
               timeout: float = 120, poll: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended ({proc.returncode}) before {what}:\n"
                                 f"{proc.stdout.read() if proc.stdout else ''}")
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def published_lists(redis_url: str, namespace: str, users: list[Any]) -> dict[str, Any]:
    """Every user's published list under the namespace's current version, read from Redis."""
    r = redis.Redis.from_url(redis_url)
    version = r.get(f"recpipe:{{{namespace}}}:current").decode()
    values = r.mget([f"recpipe:{namespace}:v:{version}:u:{u}" for u in users])
    assert all(v is not None for v in values), "a user's list is missing"
    return {str(u): json.loads(v) for u, v in zip(users, values, strict=True)}


def users_of(wf: Path, name: str) -> list[Any]:
    lists = pd.read_parquet(wf.parent / "runs" / name / DATE / "recommendations")
    return sorted(lists["user_id"].unique().tolist())


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, data: Path, cli_cluster: CliCluster,
             redis_url: str) -> tuple[Path, str]:
    """An uninterrupted run, through the CLI, on the command-line cluster (address mode)."""
    tmp = tmp_path_factory.mktemp("baseline")
    name = f"base{os.getpid()}"
    wf = make_workflow(tmp, data, cli_cluster, name)
    result = run_cli(wf, redis_url)
    assert result.returncode == 0, result.stdout + result.stderr
    return wf, name


def test_address_mode_runs_a_workflow_on_cli_started_workers(
        baseline: tuple[Path, str], cli_cluster: CliCluster, redis_url: str) -> None:
    wf, name = baseline
    manifest = manifest_of(wf, name)
    assert manifest["status"] == "done"
    assert manifest["stages"]["prepare"]["partitions"] >= 2
    assert len(published_lists(redis_url, name, users_of(wf, name))) == \
        manifest["stages"]["recommend"]["users"]
    # a finished date is not redone
    again = run_cli(wf, redis_url)
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    assert manifest_of(wf, name)["stages"] == manifest["stages"]


def test_killed_run_resumes_and_publishes_the_same_lists(
        tmp_path: Path, data: Path, cli_cluster: CliCluster, redis_url: str,
        baseline: tuple[Path, str]) -> None:
    name = f"killed{os.getpid()}"
    wf = make_workflow(tmp_path, data, cli_cluster, name)
    proc = start_run(wf, redis_url)
    wait_until(lambda: stage_status(wf, name, "train") == "running", proc, "train started")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted = manifest_of(wf, name)
    assert interrupted["status"] == "running" and interrupted["stages"]["train"]["status"] == \
        "running", "the kill did not land mid-run"
    done_before = {s: v["finished"] for s, v in interrupted["stages"].items()
                   if v["status"] == "done"}

    result = run_cli(wf, redis_url)  # the kernel released the run lock with the process
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = manifest_of(wf, name)
    assert resumed["status"] == "done"
    assert {s: resumed["stages"][s]["finished"] for s in done_before} == done_before
    base_wf, base_name = baseline
    assert published_lists(redis_url, name, users_of(wf, name)) == \
        published_lists(redis_url, base_name, users_of(base_wf, base_name))


def feature_statistics(run_dir: Path) -> dict[str, Any]:
    """Every saved statistic of every cutoff's feature workflow."""
    root = run_dir / "features"
    stats: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            stats[str(path.relative_to(root))] = frame.sort_values(list(frame.columns)) \
                .reset_index(drop=True)
        elif path.suffix == ".json":
            stats[str(path.relative_to(root))] = json.loads(path.read_text())
    return stats


def assert_close(got: Any, want: Any, where: str) -> None:
    """Equal JSON, floats to 1e-12 relative (a sum over partitions may change order)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12, nan_ok=True), where
    else:
        assert got == want, where


def test_worker_killed_during_feature_fitting(
        tmp_path: Path, data: Path, cli_cluster: CliCluster, redis_url: str,
        baseline: tuple[Path, str]) -> None:
    name = f"wkill{os.getpid()}"
    wf = make_workflow(tmp_path, data, cli_cluster, name)
    proc = start_run(wf, redis_url)
    try:
        wait_until(lambda: stage_status(wf, name, "features") == "running", proc,
                   "features started", poll=0.005)
        victim = cli_cluster.workers[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        cli_cluster.workers.remove(cli_cluster.workers[0])
        cli_cluster.start_worker()
        cli_cluster.wait_for(2)
    manifest = manifest_of(wf, name)
    if proc.returncode != 0:  # allowed: a clear message, no traceback
        assert "Traceback" not in out and "error:" in out, out
        return
    assert manifest["stages"]["features"]["finished"] >= killed_at
    base_wf, base_name = baseline
    got = feature_statistics(wf.parent / "runs" / name / DATE)
    want = feature_statistics(base_wf.parent / "runs" / base_name / DATE)
    assert got.keys() == want.keys() and got
    for key, value in want.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(got[key], value, rtol=1e-12)
        else:
            assert_close(got[key], value, key)
    assert manifest["stages"]["features"]["output_schema"] == \
        manifest_of(base_wf, base_name)["stages"]["features"]["output_schema"]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start (and restart) a redis-server with an fsync-always append-only file on a free port."""
    if shutil.which("redis-server") is None:
        pytest.skip("Debian's redis-server is not installed (.ci/run installs it)")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        r = redis.Redis(port=port)
        for _ in range(200):
            try:
                if r.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        return proc

    start.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for proc in procs:
            _stop(proc)


def test_redis_killed_mid_publish(
        tmp_path: Path, cli_cluster: CliCluster, baseline: tuple[Path, str],
        own_redis: Callable[[], subprocess.Popen[bytes]]) -> None:
    url: str = own_redis.url  # type: ignore[attr-defined]
    server = own_redis()
    base_wf, name = baseline
    # two nights whose stages up to recommend are done: copies of the baseline's run folder
    runs = tmp_path / "runs" / name
    wf = tmp_path / "w.yaml"
    spec = base_wf.read_text().replace(str(base_wf.parent / "runs"), str(tmp_path / "runs"))
    wf.write_text(spec)
    for date in ("2026-03-01", "2026-03-02"):
        shutil.copytree(base_wf.parent / "runs" / name / DATE, runs / date)

    first = recpipe("run", str(wf), "--date", "2026-03-01", env={**os.environ,
                                                                 "REDIS_URL": url})
    assert first.returncode == 0, first.stderr
    r = redis.Redis.from_url(url)
    v1 = r.get(f"recpipe:{{{name}}}:current").decode()

    api_port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--namespace", name,
                            "--redis-url", url, "--port", str(api_port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    base = f"http://127.0.0.1:{api_port}"
    user = users_of(base_wf, name)[0]
    try:
        wait_ready(base, api)
        assert httpx.get(f"{base}/v1/users/{user}/recommendations").json()["version"] == v1

        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "run", str(wf), "--date", "2026-03-02"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            env={**os.environ, "REDIS_URL": url}, start_new_session=True)
        lock_key = f"recpipe:{{{name}}}:lock"
        wait_until(lambda: r.exists(lock_key) == 1, proc, "the publish lock", poll=0.001)
        server.kill()
        server.wait()
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 3, out  # store unavailable, a clear message
        assert "Traceback" not in out and "error:" in out

        own_redis()
        assert r.get(f"recpipe:{{{name}}}:current").decode() == v1
        wait_ready(base, api, timeout=30)
        got = httpx.get(f"{base}/v1/users/{user}/recommendations").json()
        assert got["version"] == v1 and got["items"]

        # the dead publisher's namespace lock survived in the append-only file; it expires
        # by itself (the next night, hours later, never sees it)
        ttl = r.pttl(lock_key)
        assert ttl <= 30_000, "the publish lock of a dead run does not expire"
        time.sleep(max(ttl, 0) / 1000 + 0.2)
        again = recpipe("run", str(wf), "--date", "2026-03-02", env={**os.environ,
                                                                     "REDIS_URL": url})
        assert again.returncode == 0, again.stderr
        v2 = r.get(f"recpipe:{{{name}}}:current").decode()
        assert v2 != v1
        assert httpx.get(f"{base}/v1/users/{user}/recommendations").json()["version"] == v2
        kept = {v.decode() for v in r.lrange(f"recpipe:{{{name}}}:versions", 0, -1)}
        written = {k.decode().split(":")[3] for k in r.scan_iter(f"recpipe:{name}:v:*")}
        assert written <= kept, f"leftovers of the failed publish: {written - kept}"
    finally:
        _stop(api)


def test_sigterm_fails_the_stage_and_a_second_run_exits_75_at_once(
        tmp_path: Path, data: Path, cli_cluster: CliCluster, redis_url: str) -> None:
    """systemd stops a run with SIGTERM: the stage is marked failed, the lock released, exit
    143. Meanwhile a second run of the workflow exits 75 before importing Dask or torch."""
    name = f"term{os.getpid()}"
    wf = make_workflow(tmp_path, data, cli_cluster, name)
    proc = start_run(wf, redis_url)
    try:
        wait_until(lambda: stage_status(wf, name, "features") == "running", proc,
                   "features started")
        started = time.monotonic()
        second = run_cli(wf, redis_url)
        took = time.monotonic() - started
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, out
    assert "Traceback" not in out and "interrupted by SIGTERM" in out
    manifest = manifest_of(wf, name)
    assert manifest["status"] == "failed"
    failed = [s for s, v in manifest["stages"].items() if v["status"] != "done"]
    assert failed and all(manifest["stages"][s]["status"] == "failed" for s in failed)
    assert manifest["stages"][failed[0]]["error"] == "interrupted by SIGTERM"
    from pipeline.runlock import RunLock

    with RunLock(wf.parent / "runs" / name):  # released
        pass
    assert second.returncode == 75, second.stderr
    assert "another run of this workflow holds" in second.stderr
    assert took < 8, f"the second run took {took:.1f} s to see the lock"


def copied_nights(tmp_path: Path, baseline: tuple[Path, str],
                  dates: tuple[str, ...] = ("2026-03-01", "2026-03-02")) -> Path:
    """A workflow whose nights ``dates`` are done up to publish: copies of the baseline's run
    folder, so only the publish stage runs (a second or two each)."""
    base_wf, name = baseline
    wf = tmp_path / "w.yaml"
    wf.write_text(base_wf.read_text().replace(str(base_wf.parent / "runs"),
                                              str(tmp_path / "runs")))
    for date in dates:
        shutil.copytree(base_wf.parent / "runs" / name / DATE, tmp_path / "runs" / name / date)
    return wf


def test_a_rerun_does_not_undo_a_rollback(
        tmp_path: Path, cli_cluster: CliCluster, baseline: tuple[Path, str],
        own_redis: Callable[[], subprocess.Popen[bytes]]) -> None:
    url: str = own_redis.url  # type: ignore[attr-defined]
    own_redis()
    name = baseline[1]
    wf = copied_nights(tmp_path, baseline)
    env = {**os.environ, "REDIS_URL": url}
    for date in ("2026-03-01", "2026-03-02"):
        assert recpipe("run", str(wf), "--date", date, env=env).returncode == 0
    r = redis.Redis.from_url(url)
    v2 = r.get(f"recpipe:{{{name}}}:current").decode()
    back = recpipe("rollback", "--namespace", name, env=env)
    assert back.returncode == 0, back.stderr
    v1 = back.stdout.strip()
    assert v1 != v2
    again = recpipe("run", str(wf), "--date", "2026-03-02", env=env)
    assert again.returncode == 0, again.stderr
    assert "was rolled back" in again.stderr and "--force" in again.stderr
    assert r.get(f"recpipe:{{{name}}}:current").decode() == v1
    assert r.lrange(f"recpipe:{{{name}}}:versions", 0, -1)[-1].decode() == v1


@pytest.mark.parametrize("fault", ["paused", "restarted empty"])
def test_redis_stalls_mid_publish(
        tmp_path: Path, cli_cluster: CliCluster, baseline: tuple[Path, str],
        own_redis: Callable[[], subprocess.Popen[bytes]], fault: str) -> None:
    """While a publish holds the namespace lock, Redis is paused (SIGSTOP) past the client's
    socket timeout, or killed and restarted without its data. A pause shorter than the lock's
    lifetime is ridden out (exit 0); losing the lock to a restart is a store error (exit 3),
    never a half-published version, and the next run publishes and cleans up."""
    url: str = own_redis.url  # type: ignore[attr-defined]
    server = own_redis()
    name = baseline[1]
    wf = copied_nights(tmp_path, baseline)
    env = {**os.environ, "REDIS_URL": url}
    assert recpipe("run", str(wf), "--date", "2026-03-01", env=env).returncode == 0
    r = redis.Redis.from_url(url)
    v1 = r.get(f"recpipe:{{{name}}}:current").decode()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", str(wf), "--date", "2026-03-02"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env,
        start_new_session=True)
    try:
        wait_until(lambda: r.exists(f"recpipe:{{{name}}}:lock") == 1, proc, "the publish lock",
                   poll=0.001)
        if fault == "paused":
            server.send_signal(signal.SIGSTOP)
            time.sleep(7)  # past the 5 s socket timeout, within the lock's 30 s
            server.send_signal(signal.SIGCONT)
        else:
            server.kill()
            server.wait()
            shutil.rmtree(tmp_path / "appendonlydir", ignore_errors=True)
            own_redis()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in out
    if fault == "paused":
        assert proc.returncode == 0, out
        assert r.get(f"recpipe:{{{name}}}:current").decode() != v1
        return
    assert proc.returncode == 3, out  # the store failed: exit 3, not 2
    assert "error:" in out
    time.sleep(max(r.pttl(f"recpipe:{{{name}}}:lock"), 0) / 1000 + 0.2)
    again = recpipe("run", str(wf), "--date", "2026-03-02", env=env)
    assert again.returncode == 0, again.stderr
    kept = {v.decode() for v in r.lrange(f"recpipe:{{{name}}}:versions", 0, -1)}
    written = {k.decode().split(":")[3] for k in r.scan_iter(f"recpipe:{name}:v:*")}
    assert r.get(f"recpipe:{{{name}}}:current") is not None
    assert written <= kept, f"leftovers of the failed publish: {written - kept}"


@pytest.mark.parametrize("stage", ["evaluate", "recommend"])
def test_kill_9_during_a_late_stage_resumes_and_publishes_the_same_lists(
        tmp_path: Path, cli_cluster: CliCluster, redis_url: str, baseline: tuple[Path, str],
        stage: str) -> None:
    """kill -9 of ``recpipe run`` in a late stage (the train stage: see above): the next run
    redoes that stage and the ones after it only, and publishes the baseline's lists."""
    from pipeline.runner import STAGES

    base_wf, name = baseline
    wf = copied_nights(tmp_path, baseline, dates=(DATE,))
    path = tmp_path / "runs" / name / DATE / "manifest.json"
    manifest = json.loads(path.read_text())
    for later in STAGES[STAGES.index(stage):]:  # as if the night stopped before ``stage``
        manifest["stages"].pop(later)
    path.write_text(json.dumps(manifest))
    proc = start_run(wf, redis_url)
    wait_until(lambda: stage_status(wf, name, stage) == "running", proc, f"{stage} started",
               poll=0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert manifest_of(wf, name)["stages"][stage]["status"] == "running"
    result = run_cli(wf, redis_url)
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = manifest_of(wf, name)
    assert resumed["status"] == "done"
    for earlier in STAGES[:STAGES.index(stage)]:
        assert resumed["stages"][earlier] == manifest["stages"][earlier]
    assert published_lists(redis_url, name, users_of(wf, name)) == \
        published_lists(redis_url, name, users_of(base_wf, name))
