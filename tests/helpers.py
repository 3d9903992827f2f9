"""Small real inputs for tests: a synthetic interaction log written as Parquet, workflow files,
free ports and a running API process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import httpx
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def write_synthetic_log(out: Path, users: int = 120, items: int = 60, days: int = 90,
                        seed: int = 0) -> Path:
    """Users with taste clusters: items in a user's cluster are likelier, and popular overall
    items too, so both co-occurrence and popularity have signal."""
    rng = np.random.default_rng(seed)
    n = users * 25
    user = rng.integers(1, users + 1, n)
    cluster = user % 3
    item = np.where(rng.random(n) < 0.6,
                    (rng.zipf(1.5, n) % (items // 3)) * 3 + cluster,
                    rng.zipf(1.3, n) % items) + 1
    ts = 1_700_000_000 + rng.integers(0, days * 86_400, n)
    log = pd.DataFrame({"user_id": user, "item_id": item.astype("int64"),
                        "rating": rng.integers(1, 6, n), "timestamp": ts})
    (out / "interactions").mkdir(parents=True)
    for p in range(2):
        log[log["user_id"] % 2 == p].to_parquet(out / "interactions" / f"p{p}.parquet",
                                                 index=False)
    (out / "users").mkdir()
    pd.DataFrame({"user_id": np.arange(1, users + 1), "age": rng.integers(15, 70, users),
                  "gender": rng.choice(["M", "F"], users)}).to_parquet(
        out / "users" / "u.parquet", index=False)
    (out / "items").mkdir()
    pd.DataFrame({"item_id": np.arange(1, items + 1),
                  "genre": rng.choice(["a", "b", "c", None], items)}).to_parquet(
        out / "items" / "i.parquet", index=False)
    return out


def workflow_file(path: Path, data: Path, runs: Path, name: str, **overrides: Any) -> Path:
    spec: dict[str, Any] = {
        "name": name,
        "data": {
            "interactions": {"path": str(data / "interactions"),
                             "columns": {"user": "user_id", "item": "item_id",
                                         "timestamp": "timestamp", "rating": "rating"}},
            "users": {"path": str(data / "users"), "key": "user_id"},
            "items": {"path": str(data / "items"), "key": "item_id"},
        },
        "split": {"holdout_days": 10, "label_days": 10, "label_windows": 3},
        "features": [
            {"op": "categorify", "columns": ["user_id", "item_id", "gender", "genre"]},
            {"op": "normalize", "columns": ["age"]},
            {"op": "target_encoding", "columns": ["item_id"], "target": "relevant"},
        ],
        "candidates": {"popularity": {"n": 30}, "cooccurrence": {"n": 30}},
        "ranker": {"num_boost_round": 30, "early_stopping_rounds": 10},
        "recommend": {"k": 10},
        "cluster": {"n_workers": 1},
        "run": {"dir": str(runs)},
    }
    for key, value in overrides.items():
        spec[key] = value
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recpipe(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed console script's code path (``python -m pipeline.cli``)."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env or dict(os.environ), cwd=ROOT,
                          **kwargs)


def wait_ready(base_url: str, proc: subprocess.Popen[Any] | None = None,
               timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{base_url} not ready after {timeout} s")


FEATURES = ["f0", "f1", "f2"]


def ranker_rows(seed: int = 0, n_groups: int = 200, size: int = 10) -> dd.DataFrame:
    """Query groups of ``size`` rows; the label depends on f0 and f1 (f2 is noise). Two
    partitions with disjoint, sorted query ids, as the training stage writes them."""
    rng = np.random.default_rng(seed)
    n = n_groups * size
    x = rng.normal(size=(n, 3)).astype(np.float32)
    p = 1 / (1 + np.exp(-(2 * x[:, 0] - x[:, 1] - 1.0)))
    frame = pd.DataFrame(x, columns=FEATURES).assign(
        label=(rng.random(n) < p).astype(np.float32),
        qid=np.repeat(np.arange(n_groups), size).astype(np.int64))
    frame["is_valid"] = (frame["qid"] % 5 == 0).to_numpy()
    half = n // 2
    parts = [dask.delayed(frame.iloc[:half]), dask.delayed(frame.iloc[half:])]
    return dd.from_delayed(parts, meta=frame.iloc[:0])


T0 = 1_700_000_000
DAY = 86_400


def log(rows: list[tuple[int, int, float]], relevant: bool = True) -> dd.DataFrame:
    """(user, item, day) events as the runner writes them: two partitions split by user, with
    a ``relevant`` label (every event relevant unless ``relevant`` is False)."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "day"])
    frame = pd.DataFrame({"user_id": frame["user_id"].astype("int64"),
                          "item_id": frame["item_id"].astype("int64"),
                          "timestamp": (T0 + frame["day"] * DAY).astype("int64"),
                          "relevant": np.int8(1 if relevant else 0)})
    parts = [dask.delayed(frame[frame["user_id"] % 2 == p].reset_index(drop=True))
             for p in (0, 1)]
    return dd.from_delayed(parts, meta=frame.iloc[:0])
