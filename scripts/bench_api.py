"""Benchmark the lookup API as it runs in production, driven by wrk on loopback.

1. publishes ``--users`` users x top-``--k`` lists with ``publish_lists`` on a 2-worker
   LocalCluster (the real writer, so keys and values are exactly what production reads), then
   closes the cluster so it takes no CPU during the measurement;
2. measures raw ``GET`` latency of one redis-py client (the floor any API adds to);
3. starts ``recpipe serve --workers W`` as a subprocess (uvicorn, uvloop, httptools);
4. runs wrk (``scripts/wrk_users.lua``: random users, ``--unknown`` of them unpublished, so they
   get the fallback) for ``--duration`` seconds at each of ``--connections``, after a warm-up.

Prints a table, then as its last line one JSON object: the 8-connection figures at the top level
(``requests_per_s``, ``p50_ms``, ``p99_ms``, ``errors``), the others under ``"c32"``, ``"c64"``,
and ``redis_get_p50_ms`` / ``redis_get_p99_ms``.

    python scripts/bench_api.py                      # REDIS_URL, else an embedded Redis
    REDIS_URL=redis://127.0.0.1:6399/0 python scripts/bench_api.py --duration 10

The namespace is a fresh ``bench<random>`` one and its keys are deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import redis

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "scripts" / "wrk_users.lua"


def _lists(users: int, k: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = users * k
    return pd.DataFrame({
        "user_id": np.repeat(np.arange(users, dtype=np.int64), k),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), users),
        "item_id": rng.integers(0, 50_000, n, dtype=np.int64),
        "score": np.sort(rng.random((users, k)), axis=1)[:, ::-1].ravel(),
        "source": "bench",
    })


def publish(url: str, namespace: str, users: int, k: int) -> tuple[str, float]:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from pipeline.cluster import worker_malloc_settings
    from pipeline.publish import publish_lists

    frame = _lists(users, k)
    with (
        worker_malloc_settings(),  # as the nightly run's cluster (pipeline.cluster)
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                     dashboard_address=None) as cluster,
        Client(cluster),
    ):
        # Sorted index: each user's rows land in one partition, as publish_lists requires.
        lists = dd.from_pandas(frame.set_index("user_id"), npartitions=8).reset_index()
        report = publish_lists(lists, url, namespace, fallback_items=[1, 2, 3, 4, 5])
    return report.version, report.seconds


def redis_get_latency(url: str, namespace: str, version: str, users: int,
                      n: int = 20_000) -> tuple[float, float]:
    """p50, p99 in ms of single GETs of random user keys from one redis-py client."""
    from pipeline.publish.keys import Keys

    prefix = Keys(namespace).user_prefix(version)
    r = redis.Redis.from_url(url)
    times = []
    try:
        for _ in range(n):
            key = f"{prefix}{random.randrange(users)}"
            t = time.perf_counter_ns()
            r.get(key)
            times.append(time.perf_counter_ns() - t)
    finally:
        r.close()
    p50, p99 = np.percentile(np.array(times) / 1e6, [50, 99])
    return float(p50), float(p99)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def api_server(url: str, namespace: str, workers: int) -> Iterator[str]:
    """``recpipe serve`` in a subprocess, until it answers /readyz."""
    port = _free_port()
    recpipe = shutil.which("recpipe", path=str(Path(sys.executable).parent)) or "recpipe"
    cmd = [recpipe, "serve", "--namespace", namespace, "--redis-url", url,
           "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"recpipe serve exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("recpipe serve did not become ready in 30 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_wrk(base: str, connections: int, duration: int, users: int, unknown: float,
            k: int) -> dict[str, float]:
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
           "-s", str(LUA), base, "--", str(users), str(unknown), str(k)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    result: dict[str, float] = json.loads(line.removeprefix("WRK_JSON "))
    return result


def delete_namespace(url: str, namespace: str) -> int:
    r = redis.Redis.from_url(url)
    deleted = 0
    try:
        for pattern in (f"recpipe:{{{namespace}}}:*", f"recpipe:{namespace}:*"):
            batch: list[bytes] = []
            for key in r.scan_iter(match=pattern, count=5000):
                batch.append(key)
                if len(batch) >= 5000:
                    deleted += r.unlink(*batch)
                    batch = []
            if batch:
                deleted += r.unlink(*batch)
    finally:
        r.close()
    return deleted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=20, help="stored list length")
    parser.add_argument("--request-k", type=int, default=10, help="k asked for by wrk")
    parser.add_argument("--unknown", type=float, default=0.03, help="share of unknown users")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="seconds per row")
    parser.add_argument("--connections", default="8,32,64")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    with contextlib.ExitStack() as stack:
        url = args.redis_url
        if not url:
            from pipeline.publish import EmbeddedRedis

            url = stack.enter_context(EmbeddedRedis()).url
        namespace = f"bench{uuid.uuid4().hex[:8]}"
        stack.callback(delete_namespace, url, namespace)
        version, publish_s = publish(url, namespace, args.users, args.k)
        print(f"published {args.users:,} users x {args.k} as {namespace}/{version} "
              f"in {publish_s:.1f} s", file=sys.stderr)
        get_p50, get_p99 = redis_get_latency(url, namespace, version, args.users)

        results: dict[int, dict[str, float]] = {}
        with api_server(url, namespace, args.workers) as base:
            run_wrk(base, 8, 2, args.users, args.unknown, args.request_k)  # warm-up
            for c in (int(x) for x in args.connections.split(",")):
                results[c] = run_wrk(base, c, args.duration, args.users, args.unknown,
                                     args.request_k)

    print(f"\nlookup API: {args.workers} uvicorn workers, wrk on the same host "
          f"({os.cpu_count()} cores), k={args.request_k} of {args.k}, "
          f"{args.unknown:.0%} unknown users, {args.duration:g} s per row")
    print(f"{'connections':>11} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'errors':>7}")
    for c, r in results.items():
        print(f"{c:>11} {r['requests_per_s']:>9,.0f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} {r['errors']:>7.0f}")
    print(f"raw Redis GET from one redis-py client: p50 {get_p50:.3f} ms, p99 {get_p99:.3f} ms")

    def pick(r: dict[str, float]) -> dict[str, float]:
        return {key: r[key] for key in ("requests_per_s", "p50_ms", "p90_ms", "p99_ms", "errors")}

    first, *rest = results
    summary: dict[str, object] = {
        **pick(results[first]),
        "connections": first,
        **{f"c{c}": pick(results[c]) for c in rest},
        "redis_get_p50_ms": round(get_p50, 4),
        "redis_get_p99_ms": round(get_p99, 4),
        "users": args.users,
        "workers": args.workers,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
