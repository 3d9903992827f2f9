#!/usr/bin/env python
"""Deterministic Criteo-like click log as Parquet files of about 1M rows each.

Columns (issue 3): ``user_id`` and ``item_id`` (int64, Zipf, about N/20 and N/50 distinct),
``cat_0``..``cat_7`` (even ones 8-digit hex strings, odd ones int64; cardinalities log-spaced from
10 to N/10; Zipf; 2% nulls), ``num_0``..``num_5`` (lognormal float32, 2% nulls), ``timestamp``
(datetime64[s], increasing) and ``click`` (int8, logistic in user, item, cat_0, cat_3 and num_0
effects, so target encoding carries signal). The same (rows, seed) always gives the same bytes of
data, file by file (each file has its own seeded generator), so files can be made in any order.

usage: gen_clicklog.py ROWS OUT_DIR [--rows-per-file 1000000] [--seed 42]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NULL_P = 0.02
T0, SPAN = 1_700_000_000, 7 * 86_400
NUM_SCALE = np.array([1, 10, 100, 0.1, 5, 1000], np.float32)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


class Zipf:
    """Zipf(s) over ``card`` ids; frequency rank -> id through a fixed random permutation."""

    def __init__(self, card: int, s: float, rng: np.random.Generator) -> None:
        w = 1.0 / np.arange(1, card + 1, dtype=np.float64) ** s
        self.cdf = np.cumsum(w) / w.sum()
        self.ids = rng.permutation(card)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self.cdf, rng.random(n)), len(self.cdf) - 1)
        return self.ids[pos]


def hex_strings(values: np.ndarray) -> pa.Array:
    """uint32 values as 8-digit lowercase hex strings, vectorised (no per-value Python)."""
    v = values.astype(np.uint64)
    shifts = np.arange(28, -1, -4, dtype=np.uint64)
    digits = _HEX[((v[:, None] >> shifts) & np.uint64(0xF)).astype(np.intp)]
    offsets = np.arange(0, 8 * len(v) + 1, 8, dtype=np.int32)
    return pa.StringArray.from_buffers(
        len(v), pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(digits).tobytes())
    )


class ClickLog:
    """The fixed parts of a log of ``rows`` rows: id distributions, vocabularies, label effects."""

    def __init__(self, rows: int, seed: int = 42) -> None:
        self.rows, self.seed = rows, seed
        rng = np.random.default_rng(seed)
        self.users = Zipf(max(rows // 20, 10), 0.7, rng)
        self.items = Zipf(max(rows // 50, 10), 1.0, rng)
        self.cards = np.geomspace(10, max(rows // 10, 11), 8).astype(np.int64)
        self.cats = [Zipf(int(c), 1.1, rng) for c in self.cards]
        self.vocab = [hex_strings(rng.integers(0, 2**32, int(c))) for c in self.cards]
        self.u_eff = rng.normal(0, 1.0, len(self.users.cdf))
        self.i_eff = rng.normal(0, 0.8, len(self.items.cdf))
        self.c0_eff = rng.normal(0, 0.5, int(self.cards[0]))
        self.c3_eff = rng.normal(0, 0.5, int(self.cards[3]))

    def file_table(self, f: int, nfiles: int) -> pa.Table:
        """Rows ``[f*N/nfiles, (f+1)*N/nfiles)`` of the log."""
        r = np.random.default_rng([self.seed, f])
        lo, hi = f * self.rows // nfiles, (f + 1) * self.rows // nfiles
        n = hi - lo
        cols: dict[str, pa.Array] = {
            "user_id": pa.array(self.users.sample(r, n).astype(np.int64)),
            "item_id": pa.array(self.items.sample(r, n).astype(np.int64)),
        }
        codes = [z.sample(r, n) for z in self.cats]
        for j, c in enumerate(codes):
            mask = r.random(n) < NULL_P
            if j % 2 == 0:
                idx = pa.array(c.astype(np.int32), mask=mask)
                cols[f"cat_{j}"] = pa.DictionaryArray.from_arrays(
                    idx, self.vocab[j]
                ).dictionary_decode()
            else:
                cols[f"cat_{j}"] = pa.array(c.astype(np.int64), mask=mask)
        nums = r.lognormal(0.0, 1.0, (6, n)).astype(np.float32) * NUM_SCALE[:, None]
        for j in range(6):
            cols[f"num_{j}"] = pa.array(nums[j], mask=r.random(n) < NULL_P)
        ts = T0 + (lo + np.sort(r.integers(0, n, n))) * SPAN // self.rows
        cols["timestamp"] = pa.array(ts.astype("datetime64[s]"))
        user = cols["user_id"].to_numpy()
        item = cols["item_id"].to_numpy()
        logit = (
            -2.2 + self.u_eff[user] + self.i_eff[item] + self.c0_eff[codes[0]]
            + self.c3_eff[codes[3]] + 0.3 * np.log(nums[0])
        )
        cols["click"] = pa.array((r.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8))
        return pa.table(cols)


def generate(
    rows: int, out: str | Path, rows_per_file: int = 1_000_000, seed: int = 42
) -> list[Path]:
    """Write the log under ``out`` (``part_0000.parquet``...) and return the file paths.

    A directory that already holds a complete log of the same (rows, seed, rows_per_file) is
    reused: a ``_SUCCESS`` marker naming them is written last.
    """
    out = Path(out)
    nfiles = max(1, -(-rows // rows_per_file))
    files = [out / f"part_{f:04d}.parquet" for f in range(nfiles)]
    marker = out / "_SUCCESS"
    stamp = f"rows={rows} seed={seed} rows_per_file={rows_per_file}\n"
    if marker.is_file() and marker.read_text() == stamp and all(p.is_file() for p in files):
        return files
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    log = ClickLog(rows, seed)
    for f, path in enumerate(files):
        pq.write_table(log.file_table(f, nfiles), path, row_group_size=256 * 1024)
    marker.write_text(stamp)
    return files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", type=int)
    p.add_argument("out")
    p.add_argument("--rows-per-file", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    files = generate(a.rows, a.out, a.rows_per_file, a.seed)
    print(f"{a.rows} rows in {len(files)} files under {a.out}")


if __name__ == "__main__":
    main()
