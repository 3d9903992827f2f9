#!/usr/bin/env python
"""Feature engine benchmark on a Criteo-like click log (issue 3).

Generates ``--rows`` rows deterministically (``scripts/gen_clicklog.py``, Parquet files of about
1M rows, cached under ``--data``), then in one run measures:

* recpipe: Categorify of 10 categoricals, FillMedian >> Normalize of 6 continuous columns,
  TargetEncoding (5 folds, p_smooth 20) of user_id, item_id and [user_id, item_id] on click;
  fit, then transform (out-of-fold, as for training rows) and write Parquet, on a local Dask
  cluster (``--workers`` processes x ``--threads`` threads);
* a naive single-process pandas implementation of the same workflow (in a child process, so its
  memory does not count against recpipe's);
* the I/O floor: a plain pyarrow read and write of the same data.

Peak RSS is the whole process tree (this process, its Dask workers), sampled every 50 ms
(``MemWatch``). RSS counts a page shared by several processes once per process (the fitted
plan, which the workers and the client map from one file), so the peak PSS (each shared page
divided among the processes that map it: their real total) is printed beside it. The last line
printed is one JSON object.

usage: bench_features.py --rows 10000000 [--workers 2 --threads 1] [--compression lz4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_clicklog import generate  # noqa: E402
from memwatch import MemWatch  # noqa: E402

from pipeline.features.backend import PARTITION_ROWS  # noqa: E402

CATS = ["user_id", "item_id"] + [f"cat_{i}" for i in range(8)]
CONTS = [f"num_{i}" for i in range(6)]
TE_GROUPS: list[Any] = ["user_id", "item_id", ["user_id", "item_id"]]
TARGET, P_SMOOTH, KFOLD = "click", 20.0, 5


def busy_cpu_s() -> float:
    """Machine-wide busy CPU seconds (to report how contended a timing was)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


# -- recpipe -------------------------------------------------------------------------------------


def build_workflow() -> Any:
    """The benchmark workflow as a recpipe feature graph."""
    from pipeline import features as F

    cats = CATS >> F.Categorify(None)
    conts = CONTS >> F.FillMedian(None) >> F.Normalize(None)
    te = F.TargetEncoding(TE_GROUPS, target=TARGET, p_smooth=P_SMOOTH, kfold=KFOLD)
    return F.Workflow(cats + conts + te + ["timestamp", TARGET])


def run_recpipe(files: list[Path], out: Path, a: argparse.Namespace, mem: MemWatch) -> dict:
    from distributed import Client, LocalCluster

    from pipeline.cluster import worker_malloc_settings
    from pipeline.features.backend import read_parquet
    from pipeline.features.output import to_parquet

    with worker_malloc_settings():  # as the nightly run's cluster (pipeline.cluster)
        cluster = LocalCluster(
            n_workers=a.workers, threads_per_worker=a.threads, processes=True,
            memory_limit=a.memory_limit, dashboard_address=None,
        )
    client = Client(cluster)
    try:
        ddf = read_parquet([str(f) for f in files], backend=a.backend,
                           partition_rows=a.partition_rows or None)
        wf = build_workflow()
        mem.reset()
        busy0, t0 = busy_cpu_s(), time.perf_counter()
        lazy = wf.fit_transform(ddf)
        t1 = time.perf_counter()
        rows = to_parquet(lazy, out, wf.output_schema, compression=a.compression)
        t2 = time.perf_counter()
        peak, peak_parts, peak_pss = mem.peak_gib(), mem.peak_parts_gib(), mem.peak_pss_gib()
        peak_phase = "fit" if mem.peak_time <= t1 else "transform"
        busy = busy_cpu_s() - busy0
        schema = {c: s["dtype"] for c, s in wf.output_schema.items()}
    finally:
        client.close()
        cluster.close()
    return {"rows": rows, "fit_s": t1 - t0, "transform_s": t2 - t1, "peak_rss_gib": peak,
            "peak_pss_gib": peak_pss,
            "peak_rss_by_process_gib": peak_parts, "peak_phase": peak_phase,
            "machine_busy_cpu_s": round(busy, 1), "output_dtypes": schema}


# -- naive pandas --------------------------------------------------------------------------------


def naive_pandas(files: list[Path], out: Path) -> dict:
    """The same workflow, the obvious way: one DataFrame in memory, pandas groupby/merge."""
    mem = MemWatch()
    t0 = time.perf_counter()
    df = pq.read_table([str(f) for f in files]).to_pandas()
    rng = np.random.default_rng(0)
    fold = rng.integers(0, KFOLD, len(df))
    df["__fold__"] = fold
    stats: dict[str, Any] = {"cats": {}, "conts": {}, "te": {}}
    for c in CATS:
        stats["cats"][c] = pd.Index(df[c].value_counts(dropna=True).index)
    for c in CONTS:
        med = df[c].median()
        x = df[c].fillna(med)
        stats["conts"][c] = (med, x.mean(), x.std(ddof=0))
    mean = df[TARGET].mean()
    for g in TE_GROUPS:
        keys = [g] if isinstance(g, str) else list(g)
        total = df.groupby(keys)[TARGET].agg(["count", "sum"])
        per_fold = df.groupby(["__fold__", *keys])[TARGET].agg(["count", "sum"]).reset_index()
        per_fold = per_fold.join(total, on=keys, rsuffix="_all")
        per_fold["te"] = (
            (per_fold["sum_all"] - per_fold["sum"] + P_SMOOTH * mean)
            / (per_fold["count_all"] - per_fold["count"] + P_SMOOTH)
        ).astype(np.float32)
        stats["te"]["_".join(keys)] = per_fold[["__fold__", *keys, "te"]]
    t1 = time.perf_counter()
    res: dict[str, Any] = {}
    for c, vocab in stats["cats"].items():
        idx = vocab.get_indexer(df[c])
        codes = np.where(idx >= 0, idx + 3, 2).astype(np.int64)
        codes[df[c].isna().to_numpy()] = 1
        res[c] = codes
    for c, (med, mu, sd) in stats["conts"].items():
        res[c] = ((df[c].fillna(med) - mu) / sd).astype(np.float32).to_numpy()
    for name, tab in stats["te"].items():
        keys = list(tab.columns[1:-1])
        te = df[["__fold__", *keys]].merge(tab, on=["__fold__", *keys], how="left")["te"]
        res[f"TE_{name}_{TARGET}"] = te.fillna(mean).astype(np.float32).to_numpy()
    res["timestamp"], res[TARGET] = df["timestamp"].to_numpy(), df[TARGET].to_numpy()
    frame = pd.DataFrame(res)
    out.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(frame), len(files) + 1).astype(int)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i in range(len(files)):
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        pq.write_table(part, out / f"part_{i:04d}.parquet")
    t2 = time.perf_counter()
    return {"rows": len(df), "fit_s": t1 - t0, "transform_s": t2 - t1,
            "peak_rss_gib": mem.peak_gib()}


def run_baseline(files: list[Path], out: Path, data_dir: Path) -> dict:
    """Run ``naive_pandas`` in a child process (its memory and time are its own)."""
    cmd = [sys.executable, __file__, "--baseline-only", "--data", str(data_dir), "--out", str(out)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- I/O floor -----------------------------------------------------------------------------------


def io_floor(files: list[Path], out: Path) -> float:
    """Seconds for a plain pyarrow read and write of every file, one thread."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, f in enumerate(files):
        table = pq.read_table(f, use_threads=False)
        pq.write_table(table, out / f"part_{i:04d}.parquet")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--data", default=None, help="data directory (default: a cache under /tmp)")
    p.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--memory-limit", default="2GiB", help="per Dask worker (the peak is measured)")
    p.add_argument("--compression", default="lz4", choices=["lz4", "snappy", "zstd", "none"])
    p.add_argument("--backend", default="pandas", choices=["pandas", "cudf", "auto"])
    p.add_argument("--partition-rows", type=int, default=PARTITION_ROWS,
                   help="rows per Dask partition (whole row groups; 0: one per file)")
    p.add_argument("--no-baseline", action="store_true", help="skip the naive pandas run")
    p.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    data = Path(a.data or f"/tmp/recpipe-bench/clicklog-{a.rows}")
    if a.baseline_only:
        files = sorted(data.glob("part_*.parquet"))
        print(json.dumps(naive_pandas(files, Path(a.out))))
        return
    t0 = time.perf_counter()
    files = generate(a.rows, data)
    gen_s = time.perf_counter() - t0
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    scratch = Path(a.out or tempfile.mkdtemp(prefix="bench-features-"))
    try:
        for f in files:  # the page cache holds the input for every contender alike
            f.read_bytes()
        mem = MemWatch()
        ours = run_recpipe(files, scratch / "recpipe", a, mem)
        # After recpipe: Arrow's allocator keeps what the floor's reads used, and this process
        # is recpipe's client.
        floor_s = io_floor(files, scratch / "io_floor")
        if ours["rows"] != rows:
            raise SystemExit(f"recpipe wrote {ours['rows']} rows, expected {rows}")
        base = None if a.no_baseline else run_baseline(files, scratch / "naive", data)
    finally:
        if a.out is None:
            shutil.rmtree(scratch, ignore_errors=True)
    fit_s, tr_s = ours["fit_s"], ours["transform_s"]
    result = {
        "rows": rows,
        "files": len(files),
        "workers": a.workers,
        "threads": a.threads,
        "compression": a.compression,
        "fit_s": round(fit_s, 2),
        "transform_s": round(tr_s, 2),
        "fit_rows_per_s": round(rows / fit_s),
        "transform_rows_per_s": round(rows / tr_s),
        "end2end_rows_per_s": round(rows / (fit_s + tr_s)),
        "peak_rss_gib": ours["peak_rss_gib"],
        "peak_pss_gib": ours["peak_pss_gib"],
        "peak_phase": ours["peak_phase"],
        "peak_rss_by_process_gib": ours["peak_rss_by_process_gib"],
        "baseline_end2end_rows_per_s": (
            round(rows / (base["fit_s"] + base["transform_s"])) if base else None
        ),
        "baseline_peak_rss_gib": base["peak_rss_gib"] if base else None,
        "io_floor_rows_per_s": round(rows / floor_s),
        "machine_busy_cpu_s": ours["machine_busy_cpu_s"],
        "cores": os.cpu_count(),
        "generate_s": round(gen_s, 1),
    }
    print("output dtypes:", json.dumps(ours["output_dtypes"]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
