"""Benchmark: ParquetBatchLoader rows/s vs torch DataLoader over a per-row map-style Dataset.

Generates (or reuses) a transformed click-log-like Parquet dataset: 10 int64 categorical columns,
6 float32 continuous, an int8 label; ~1M rows per file in row groups of 256Ki rows. Then, in the
same run:

- loader: one shuffled epoch of ``ParquetBatchLoader`` over every row (read from disk; the files
  are usually in the OS page cache after generation);
- baseline: ``torch.utils.data.DataLoader(shuffle=True, num_workers=0)`` over a map-style Dataset
  whose ``__getitem__`` returns one row's tensors from in-memory numpy arrays (the common
  pattern), on the first ``--baseline-rows`` rows only so it finishes in seconds (its reading
  time is excluded, which flatters it).

Prints a table and, as its last line, JSON with rows_per_s, baseline_rows_per_s, speedup,
batch_size and peak_rss_gib.

    python scripts/bench_loader.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.rankers.loader import LoaderColumns, ParquetBatchLoader

CAT = [f"c{i}" for i in range(10)]
CONT = [f"f{i}" for i in range(6)]
LABEL = "label"
ROWS_PER_FILE = 1_000_000
ROW_GROUP = 262_144


def generate(out: Path, rows: int, seed: int = 0) -> list[Path]:
    """Write the dataset once (file by file, so memory stays at one file); reuse it after."""
    done = out / "_SUCCESS"
    files = sorted(out.glob("part-*.parquet"))
    if done.exists():
        return files
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cards = np.array([10, 100, 1_000, 10_000, 100_000, 1_000_000, 50, 500, 5_000, 50_000])
    for k, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        n = min(ROWS_PER_FILE, rows - start)
        cols: dict[str, np.ndarray] = {}
        for name, card in zip(CAT, cards, strict=True):
            cols[name] = (rng.zipf(1.3, n) % card + 2).astype(np.int64)
        for name in CONT:
            cols[name] = rng.standard_normal(n, dtype=np.float32)
        cols[LABEL] = (rng.random(n) < 0.1).astype(np.int8)
        pq.write_table(pa.table(cols), out / f"part-{k:05d}.parquet", row_group_size=ROW_GROUP)
    done.touch()
    return sorted(out.glob("part-*.parquet"))


class RowDataset(Dataset):
    """The naive baseline: one row's tensors per ``__getitem__``."""

    def __init__(self, path: Path, rows: int) -> None:
        table = pq.read_table(path).slice(0, rows)
        self.cat = np.stack([table.column(c).to_numpy() for c in CAT], axis=1)
        self.cont = np.stack([table.column(c).to_numpy() for c in CONT], axis=1)
        self.label = table.column(LABEL).to_numpy().astype(np.float32)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.from_numpy(self.cat[i]), torch.from_numpy(self.cont[i]),
                torch.tensor(self.label[i]))


def time_loader(files: list[Path], batch_size: int, epochs: int,
                threads: int) -> tuple[float, float, int]:
    """Wall and process-CPU seconds of ``epochs`` shuffled epochs, and the rows they yielded."""
    loader = ParquetBatchLoader(files, LoaderColumns(tuple(CAT), tuple(CONT), LABEL),
                                batch_size=batch_size, shuffle=True, binary_label=True,
                                threads=threads)
    rows = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for batch in loader:
            rows += batch.label.shape[0]
    return time.perf_counter() - t0, time.process_time() - c0, rows


def time_baseline(path: Path, rows: int, batch_size: int) -> tuple[float, int]:
    ds = RowDataset(path, rows)
    loader = DataLoader(ds, batch_size=min(batch_size, len(ds)), shuffle=True, num_workers=0)
    seen = 0
    t0 = time.perf_counter()
    for _cat, _cont, label in loader:
        seen += label.shape[0]
    return time.perf_counter() - t0, seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--batch-size", type=int, default=65_536)
    ap.add_argument("--baseline-rows", type=int, default=262_144)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch/arrow threads (cores used)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/recpipe-bench-loader"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    pa.set_cpu_count(args.threads)
    t0 = time.perf_counter()
    files = generate(args.data / f"rows-{args.rows}", args.rows)
    gen_s = time.perf_counter() - t0
    loader_s, loader_cpu, rows = time_loader(files, args.batch_size, args.epochs, args.threads)
    base_s, base_rows = time_baseline(files[0], min(args.baseline_rows, args.rows),
                                      args.batch_size)
    rate, base_rate = rows / loader_s, base_rows / base_s
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"data            {len(files)} file(s), {args.rows:,} rows ({gen_s:.1f} s to "
          "generate or find)")
    print(f"loader          {rows:>12,} rows  {loader_s:8.2f} s  {rate:>14,.0f} rows/s  "
          f"({loader_cpu:.2f} CPU-s: {rows / loader_cpu:,.0f} rows per CPU-second)")
    print(f"baseline        {base_rows:>12,} rows  {base_s:8.2f} s  {base_rate:>14,.0f} rows/s "
          "(per-row Dataset + DataLoader, in-memory sample)")
    print(f"speedup         {rate / base_rate:.1f}x   peak RSS {peak:.2f} GiB")
    print(json.dumps({
        "rows": rows, "rows_per_s": round(rate), "baseline_rows": base_rows,
        "baseline_rows_per_s": round(base_rate), "speedup": round(rate / base_rate, 2),
        "batch_size": args.batch_size, "threads": args.threads,
        "rows_per_cpu_s": round(rows / loader_cpu),
        "peak_rss_gib": round(peak, 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
