"""Benchmark: publish N users' top-k lists to Redis, beside a naive raw-MSET baseline.

Why the baseline: it is the floor of what Redis and one client socket cost for the same bytes (same
keys, same values), so the publish figure reads as "how close to the wire speed", not as a number
without context.

    python scripts/bench_publish.py --users 200000 [--partitions 8] [--redis-url URL]

The lists are generated on the workers and persisted before the clock starts, so the timed publish
is what a nightly run pays: encode on the workers, write, verify, flip the pointer. Without
``--redis-url`` an embedded valkey server is started. The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.publish.keys import Keys, encode, round_significant  # noqa: E402

ITEM_SPACE = 2_000_000


def make_partition(index: int, users: int, partitions: int, k: int, seed: int) -> pd.DataFrame:
    """Partition ``index`` of the benchmark lists: a contiguous range of users, k rows each."""
    bounds = np.linspace(0, users, partitions + 1).astype(np.int64)
    lo, hi = int(bounds[index]), int(bounds[index + 1])
    rng = np.random.default_rng([seed, index])
    n = hi - lo
    scores = np.sort(rng.random((n, k)), axis=1)[:, ::-1]
    return pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(lo, hi, dtype=np.int64), k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), n),
            "item_id": rng.integers(0, ITEM_SPACE, n * k, dtype=np.int64),
            "score": scores.reshape(-1),
        }
    )


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def reference_pairs(part: pd.DataFrame, prefix: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of every user, encoded one by one with ``keys.encode`` (the reference bytes)."""
    out = []
    scores = round_significant(part["score"].to_numpy())
    items = part["item_id"].to_numpy()
    users = part["user_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]).tolist() + [len(users)]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        value = encode(items[a:b].tolist(), scores[a:b].tolist())
        out.append((f"{prefix}{users[a]}".encode(), value.encode()))
    return out


def raw_mset(url: str, args: argparse.Namespace, prefix: str, chunk: int = 1000) -> float:
    """Seconds one client spends in MSET of every (key, value), in chunks (encoding untimed)."""
    import redis

    client = redis.Redis.from_url(url)
    spent = 0.0
    try:
        for i in range(args.partitions):
            part = make_partition(i, args.users, args.partitions, args.k, args.seed)
            pairs = reference_pairs(part, prefix)
            started = time.perf_counter()
            for lo in range(0, len(pairs), chunk):
                client.mset(dict(pairs[lo : lo + chunk]))
            spent += time.perf_counter() - started
        # Delete them again so the publish writes into the same, empty key space. DEL, not
        # UNLINK: UNLINK frees in a server thread that would still be running (and taking a
        # core) while the publish is timed.
        for key_chunk in _chunks(client.scan_iter(match=f"{prefix}*", count=10_000), 5000):
            client.delete(*key_chunk)
    finally:
        client.close()
    return spent


def drop_namespace(url: str, namespace: str) -> None:
    """Delete every key of the benchmark's namespace (on a cluster URL: on every primary)."""
    from pipeline.publish.connect import redis_connection, scan_delete

    client = redis_connection(url)
    try:
        for pattern in (f"recpipe:{namespace}:*", f"recpipe:{{{namespace}}}:*"):
            scan_delete(client, pattern)
    finally:
        client.close()


def _chunks(iterable: Any, size: int) -> Any:
    batch: list[Any] = []
    for x in iterable:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="leave the published keys in Redis")
    args = parser.parse_args()

    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, wait

    from pipeline.cluster import worker_malloc_settings
    from pipeline.publish import publish_lists
    from pipeline.publish.embedded import EmbeddedRedis

    server = None
    url = args.redis_url
    if url is None:
        server = EmbeddedRedis().start()
        url = server.url
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    version = "bench-1"
    try:
        with (
            worker_malloc_settings(),  # as the nightly run's cluster (pipeline.cluster)
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            meta = make_partition(0, 1, 1, 1, 0).iloc[:0]
            parts = [
                dask.delayed(make_partition)(i, args.users, args.partitions, args.k, args.seed)
                for i in range(args.partitions)
            ]
            lists = dd.from_delayed(parts, meta=meta, verify_meta=False).persist()
            wait(lists)

            baseline_s = raw_mset(url, args, Keys(namespace).user_prefix(version))

            rss_before = peak_rss_gib()
            started = time.perf_counter()
            report = publish_lists(
                lists, url, namespace, fallback_items=[1, 2, 3], version=version, seed=args.seed
            )
            seconds = time.perf_counter() - started
            worker_rss = client.run(peak_rss_gib)
            if not args.keep:
                drop_namespace(url, namespace)
    finally:
        if server is not None:
            server.stop()

    figures = {
        "users": report.users,
        "k": args.k,
        "partitions": args.partitions,
        "seconds": round(seconds, 3),
        "users_per_s": round(report.users / seconds),
        "raw_mset_seconds": round(baseline_s, 3),
        "raw_mset_keys_per_s": round(report.users / baseline_s),
        "peak_rss_gib": round(peak_rss_gib(), 3),
        "peak_rss_gib_before_publish": round(rss_before, 3),
        "worker_peak_rss_gib": round(max(worker_rss.values()), 3),
        "redis": "embedded valkey" if server is not None else "given URL",
    }
    print(f"{'':24}{'seconds':>10}{'users/s':>12}")
    print(f"{'publish_lists':24}{seconds:>10.3f}{figures['users_per_s']:>12,}")
    print(f"{'raw MSET (1 client)':24}{baseline_s:>10.3f}{figures['raw_mset_keys_per_s']:>12,}")
    print(
        f"peak RSS: benchmark {figures['peak_rss_gib']:.3f} GiB "
        f"(before publish {rss_before:.3f}), workers max {figures['worker_peak_rss_gib']:.3f} GiB"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
