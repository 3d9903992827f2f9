#!/usr/bin/env python
"""Where a partition's time goes in the feature benchmark's workflow, op by op (issue 3).

Fits the benchmark's workflow (``bench_features.build_workflow``) out of fold on a local Dask
cluster, as ``bench_features.py`` does, then times in this process, on ``--partitions``
partitions of the same data: the fitting pass's statistics of each op, and the out-of-fold
transform of each op. A warm-up partition first builds what each worker builds once (lookup
tables, hash tables). One process and one core: the benchmark's per-task times on a busy
2-core cluster run higher. ``--pyinstrument`` adds a profile of the transform.

usage: profile_features.py --rows 10000000 [--partitions 4] [--pyinstrument]
"""

from __future__ import annotations

import argparse
import collections
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_features import build_workflow  # noqa: E402
from gen_clicklog import generate  # noqa: E402


def timed(op: Any, method: str, into: collections.Counter) -> None:
    """Time ``op.method`` into ``into`` under the op's class name (an instance attribute, so
    nothing else is touched)."""
    original: Callable[..., Any] = getattr(op, method)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[type(op).__name__] += time.perf_counter() - start

    setattr(op, method, wrapper)


def report(title: str, total: float, per_op: collections.Counter, n: int) -> None:
    print(f"{title}: {total / n * 1000:.1f} ms per partition")
    for name, seconds in per_op.most_common():
        print(f"  {name:<16} {seconds / n * 1000:7.1f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--data", default=None, help="data directory (default: the benchmark's cache)")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--pyinstrument", action="store_true", help="profile the transform too")
    a = p.parse_args()

    import dask
    from distributed import Client, LocalCluster

    from pipeline.features.backend import read_parquet
    from pipeline.features.fitting import FitPass, TransformPass

    files = generate(a.rows, Path(a.data or f"/tmp/recpipe-bench/clicklog-{a.rows}"))
    ddf = read_parquet([str(f) for f in files])
    wf = build_workflow()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster):
        wf.fit_transform(ddf)  # fits now, out of fold; the transform stays lazy (unused)
    n = min(a.partitions, ddf.npartitions - 1)
    with dask.config.set(scheduler="synchronous"):
        warm, *parts = [ddf.partitions[i].compute() for i in range(n + 1)]

    plan = wf.plan
    fit_ops: collections.Counter = collections.Counter()
    transform_ops: collections.Counter = collections.Counter()
    for step in plan.steps:  # before the passes are made: they take copies of the ops
        timed(step.op, "partition_stats", fit_ops)
        timed(step.op, "transform", transform_ops)
    fit_pass = FitPass(plan, plan.levels()[0], out_of_fold=True)
    transform = TransformPass(plan, out_of_fold=True)
    fit_pass.partition(warm)
    transform(warm)
    fit_ops.clear()
    transform_ops.clear()

    start = time.perf_counter()
    for part in parts:
        fit_pass.partition(part)
    report("fit pass statistics", time.perf_counter() - start, fit_ops, n)
    start = time.perf_counter()
    for part in parts:
        transform(part)
    report("transform (out of fold)", time.perf_counter() - start, transform_ops, n)
    print(f"({len(parts[0]):,} rows a partition)")
    if a.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler()
        with profiler:
            for part in parts:
                transform(part)
        print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
