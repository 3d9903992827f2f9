"""Backends: pandas always; cuDF through dask-cudf when a GPU is there (skipped without one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.features import Categorify, FillMedian, Normalize, TargetEncoding, Workflow
from pipeline.features.backend import gpu_count, read_parquet, resolve_backend


def frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 20, n),
            "x": rng.normal(0, 1, n),
            "click": rng.integers(0, 2, n),
        }
    )


def workflow() -> Workflow:
    return Workflow(
        (["user_id"] >> Categorify(None))
        + (["x"] >> FillMedian(None) >> Normalize(None))
        + TargetEncoding(["user_id"], target="click")
    )


def test_backend_choice() -> None:
    assert resolve_backend("pandas") == "pandas"
    assert resolve_backend("auto") == ("cudf" if gpu_count() > 0 else "pandas")
    with pytest.raises(ConfigError, match="'pandas', 'cudf' or 'auto'"):
        resolve_backend("polars")


def test_pandas_backend_reads_parquet(tmp_path: Path) -> None:
    frame().to_parquet(tmp_path / "a.parquet")
    ddf = read_parquet(str(tmp_path / "a.parquet"), backend="pandas")
    out = workflow().fit(ddf).transform(ddf).compute()
    assert isinstance(out, pd.DataFrame) and len(out) == 300


def test_partitions_are_whole_row_groups_of_about_partition_rows(tmp_path: Path) -> None:
    """A file of 10 row groups x 100 rows reads as partitions of ~``partition_rows`` rows; a
    file of one row group stays one partition; ``None`` keeps a partition per file."""
    frame(1000).to_parquet(tmp_path / "groups.parquet", row_group_size=100)
    (tmp_path / "one").mkdir()
    frame(1000).to_parquet(tmp_path / "one" / "a.parquet")
    path = str(tmp_path / "groups.parquet")
    ddf = read_parquet(path, backend="pandas", partition_rows=250)
    assert ddf.npartitions == 5
    assert [len(p) for p in ddf.partitions] == [200] * 5
    assert read_parquet(path, backend="pandas", partition_rows=None).npartitions == 1
    assert read_parquet(path, backend="pandas", partition_rows=10).npartitions == 10
    assert read_parquet(str(tmp_path / "one"), backend="pandas").npartitions == 1
    pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), frame(1000))


@pytest.mark.skipif(gpu_count() == 0, reason="needs cudf, dask-cudf and a GPU")
def test_cudf_backend_matches_pandas(tmp_path: Path) -> None:  # pragma: no cover - GPU only
    import cudf

    pdf = frame()
    pdf.to_parquet(tmp_path / "a.parquet")
    gdf = read_parquet(str(tmp_path / "a.parquet"), backend="cudf")
    wf = workflow().fit(gdf)
    out = wf.transform(gdf).compute()
    assert isinstance(out, cudf.DataFrame)
    pd.testing.assert_frame_equal(out.to_pandas(), wf.transform(pdf))
