"""Out of core: a dataset three times the workers' total memory limit fits and transforms.

Workers get a tiny memory limit (a worker process's own interpreter and libraries already take
more than it, so Dask's pause/terminate thresholds, which watch process RSS, are switched off;
spilling, which watches the data Dask holds, stays on). The test measures each worker's peak RSS
growth during the job: it stays far below the data's size, because fitting keeps only
statistics and transforming writes each partition out as it goes.
"""

from __future__ import annotations

import resource
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.features import Categorify, FillMedian, Normalize, TargetEncoding, Workflow
from pipeline.features.output import to_parquet

LIMIT = 8 * 2**20  # per worker
WORKERS = 2
FILES, ROWS = 14, 50_000
USERS = 500


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_data(root: Path) -> None:
    for f in range(FILES):
        rng = np.random.default_rng(f)
        users = rng.integers(0, USERS, ROWS)
        tag = np.char.add("item-with-a-long-name-", rng.integers(0, 300, ROWS).astype(str))
        x = rng.normal(0, 1, ROWS)
        table = pa.table({
            "user_id": users,
            "item": pa.array(tag.astype(object), pa.string()),
            "page": pa.array(np.char.add("https://example.org/", (users % 97).astype(str))
                             .astype(object), pa.string()),
            "x": pa.array(x, mask=rng.random(ROWS) < 0.05),
            "click": (rng.random(ROWS) < 0.3).astype(np.int8),
        })
        pq.write_table(table, root / f"part_{f:03d}.parquet")


def workflow() -> Workflow:
    return Workflow(
        (["user_id", "item", "page"] >> Categorify(None))
        + (["x"] >> FillMedian(None) >> Normalize(None))
        + TargetEncoding(["user_id", "item"], target="click")
        + ["click"]
    )


@pytest.mark.e2e
def test_fit_and_transform_three_times_the_memory_limit(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    data = tmp_path / "in"
    data.mkdir()
    write_data(data)
    config = {
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
        "distributed.worker.memory.spill": 0.5,
        "distributed.worker.memory.target": 0.4,
    }
    with (
        dask.config.set(config),
        LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                     memory_limit=LIMIT, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        ddf = dd.read_parquet(str(data))
        in_memory = int(ddf.memory_usage(deep=True).sum().compute())
        assert in_memory >= 3 * WORKERS * LIMIT, in_memory
        # Warm up (imports, allocator pools) on two partitions, then measure the whole job.
        warm = workflow()
        to_parquet(warm.fit_transform(ddf.partitions[:2]), tmp_path / "warm", warm.output_schema)
        before = client.run(_peak_rss)
        wf = workflow()
        out = wf.fit_transform(ddf)
        rows = to_parquet(out, tmp_path / "out", wf.output_schema)
        growth = {w: _peak_rss_after - before[w] for w, _peak_rss_after in
                  client.run(_peak_rss).items()}
    assert rows == FILES * ROWS
    # No worker's peak grew by anything like the data's size: it was never all in memory.
    assert max(growth.values()) < in_memory // 2, (growth, in_memory)
    written = pd.read_parquet(tmp_path / "out", columns=["item", "x"])
    assert written["item"].max() == wf.output_schema["item"]["cardinality"] - 1
    assert abs(float(written["x"].mean())) < 1e-3
