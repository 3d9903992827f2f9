"""Benchmark: whole nights (prepare, features, train, evaluate, recommend, publish) on synthetic
logs, on the embedded default (a local Dask cluster, the embedded Redis).

Writes ``--rows`` ratings (default 1,000,000) by ``--users`` users (6,040) over ``--items`` items
(3,706) across ``--days`` days (1,000), with taste clusters and a popular head so that every
generator has signal, plus user (age, gender, occupation) and item (genre) tables; then runs
``recpipe run`` on a copy of ``workflows/movielens.yaml`` pointed at them (same features,
candidates, ranker and baselines) and prints the seconds of every stage and the peak RSS summed
over every process of the night (the CLI, the Dask scheduler and workers, Redis). With
``--scaling`` it runs the MovieLens-1M shape (1M / 6,040 / 3,706) and a mid-size shop (10M /
100k / 20k) one after the other and reports the wall-time ratio between them. Last line: JSON.

    python scripts/bench_night.py                 # 1M rows, the ML-1M shape
    python scripts/bench_night.py --rows 10000000 --users 100000 --items 20000
    python scripts/bench_night.py --scaling       # both, and wall(10M) / wall(1M)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memwatch import MemWatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START = 956_703_932  # MovieLens-1M's first timestamp (April 2000)
DAY = 86_400


def write_log(out: Path, rows: int, users: int, items: int, days: int, seed: int) -> None:
    """Ratings with per-user taste clusters and a Zipf head, in 4 Parquet files."""
    rng = np.random.default_rng(seed)
    draws = rows * 2  # one rating per (user, item), as MovieLens: repeats are dropped below
    activity = rng.lognormal(0.0, 1.0, users)  # a long tail of heavy raters, as in ML-1M
    user = rng.choice(np.arange(1, users + 1), size=draws, p=activity / activity.sum())
    popularity = 1.0 / (np.arange(items) + 10.0)  # a popular head over the whole catalogue
    popular = rng.choice(items, size=draws, p=popularity / popularity.sum())
    clusters = 20  # and a taste: items of the user's cluster (item id % 20)
    per_cluster = items // clusters
    rank_in_cluster = rng.choice(per_cluster, size=draws,
                                 p=popularity[:per_cluster] / popularity[:per_cluster].sum())
    in_cluster = rank_in_cluster * clusters + user % clusters
    item = np.where(rng.random(draws) < 0.5, in_cluster, popular) + 1
    log = pd.DataFrame({"user_id": user, "item_id": item.astype(np.int64),
                        "rating": rng.integers(1, 6, draws)})
    log = log.drop_duplicates(["user_id", "item_id"])
    log = log.iloc[np.sort(rng.permutation(len(log))[:rows])].reset_index(drop=True)
    log["timestamp"] = START + np.sort(rng.integers(0, days * DAY, len(log)))
    (out / "interactions").mkdir(parents=True)
    bounds = np.linspace(0, len(log), 5).astype(int)
    for i in range(4):
        log.iloc[bounds[i]:bounds[i + 1]].to_parquet(
            out / "interactions" / f"part.{i}.parquet", index=False)
    (out / "users").mkdir()
    pd.DataFrame({"user_id": np.arange(1, users + 1), "age": rng.integers(18, 70, users),
                  "gender": rng.choice(["M", "F"], users),
                  "occupation": rng.integers(0, 21, users).astype(str)}).to_parquet(
        out / "users" / "users.parquet", index=False)
    (out / "items").mkdir()
    pd.DataFrame({"item_id": np.arange(1, items + 1),
                  "genre": (np.arange(items) % 18).astype(str)}).to_parquet(
        out / "items" / "items.parquet", index=False)


def workflow_for(data: Path, runs: Path) -> dict:
    spec = yaml.safe_load((ROOT / "workflows" / "movielens.yaml").read_text())
    spec["name"] = "bench-night"
    spec["data"] = {
        "interactions": {"path": str(data / "interactions"),
                         "columns": {"user": "user_id", "item": "item_id",
                                     "timestamp": "timestamp", "rating": "rating"}},
        "users": {"path": str(data / "users"), "key": "user_id"},
        "items": {"path": str(data / "items"), "key": "item_id"},
    }
    spec["run"] = {"dir": str(runs)}
    return spec


SIZES = ((1_000_000, 6_040, 3_706), (10_000_000, 100_000, 20_000))


def night(rows: int, users: int, items: int, days: int, seed: int) -> dict:
    """One night on a fresh synthetic log: wall seconds, stage seconds, peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bench_night_") as tmp:
        root = Path(tmp)
        # In a child process: the generator's memory must not count as the night's.
        subprocess.run([sys.executable, __file__, "--write", str(root / "data"), "--rows",
                        str(rows), "--users", str(users), "--items", str(items), "--days",
                        str(days), "--seed", str(seed)], check=True)
        written = len(pd.read_parquet(root / "data" / "interactions", columns=["user_id"]))
        path = root / "night.yaml"
        path.write_text(yaml.safe_dump(workflow_for(root / "data", root / "runs")))
        memory = MemWatch(interval=0.2)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(path),
                        "--date", "2026-01-01"], check=True, cwd=ROOT)
        wall = time.perf_counter() - started
        manifest = json.loads(next((root / "runs").rglob("manifest.json")).read_text())
    stages = {name: round(stage["seconds"], 1) for name, stage in manifest["stages"].items()}
    return {"rows": written, "users": users, "items": items, "wall_s": round(wall, 1),
            "stage_seconds": stages, "peak_rss_gib": memory.peak_gib(),
            "published": manifest["stages"]["recommend"].get("source")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=6_040)
    parser.add_argument("--items", type=int, default=3_706)
    parser.add_argument("--days", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scaling", action="store_true",
                        help="1M / 6,040 / 3,706 then 10M / 100k / 20k, and the wall ratio")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # the data only, here
    args = parser.parse_args()
    if args.write:
        write_log(args.write, args.rows, args.users, args.items, args.days, args.seed)
        return
    sizes = SIZES if args.scaling else ((args.rows, args.users, args.items),)
    runs = [night(rows, users, items, args.days, args.seed) for rows, users, items in sizes]
    print(f"{'stage':<12}" + "".join(f"{r['rows']:>14,}" for r in runs))
    for name in runs[0]["stage_seconds"]:
        print(f"{name:<12}" + "".join(f"{r['stage_seconds'].get(name, 0):>13.1f}s"
                                      for r in runs))
    print(f"{'wall':<12}" + "".join(f"{r['wall_s']:>13.1f}s" for r in runs))
    print(f"{'peak RSS':<12}" + "".join(f"{r['peak_rss_gib']:>11.2f}GiB" for r in runs))
    result: dict = {"runs": runs}
    if len(runs) == 2:
        result["wall_ratio"] = round(runs[1]["wall_s"] / runs[0]["wall_s"], 2)
        print(f"wall ratio {result['wall_ratio']}")
    print(json.dumps(result if len(runs) > 1 else runs[0]))


if __name__ == "__main__":
    main()
