"""The one place that knows which DataFrame library holds a partition.

Ops call these helpers instead of branching on pandas vs cuDF. The backend of a run is chosen by
``resolve_backend`` ("pandas", "cudf" or "auto": cuDF when ``cudf`` and ``dask_cudf`` import and a
GPU is visible) and Parquet is read through Dask's public ``dataframe.backend`` setting, so a
dask-cudf collection flows through the same workflow code. cuDF partitions are recognised lazily
(cuDF is never imported unless a cuDF object shows up); the ops run on a host copy and the
transformed partition goes back to the GPU (``like``), so the collection keeps its backend.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError

Backend = Literal["pandas", "cudf"]

__all__ = [
    "resolve_backend",
    "read_parquet",
    "like",
    "is_frame",
    "to_pandas",
    "hash_values",
    "float_values",
    "row_hashes",
]


def _is_cudf(obj: Any) -> bool:
    """True for a cuDF object, decided by its module so cuDF is never imported needlessly."""
    return type(obj).__module__.split(".", 1)[0] == "cudf"


def is_frame(obj: Any) -> bool:
    """True for an in-memory (not Dask) DataFrame of a supported backend."""
    return isinstance(obj, pd.DataFrame) or (_is_cudf(obj) and hasattr(obj, "to_pandas"))


def to_pandas(frame: Any) -> pd.DataFrame:
    """The frame as pandas; cuDF partitions are copied to host (a GPU path would skip this)."""
    if isinstance(frame, pd.DataFrame):
        return frame
    if _is_cudf(frame):
        return frame.to_pandas()
    raise TypeError(f"expected a pandas or cuDF DataFrame, got {type(frame).__name__}")


def hash_values(values: np.ndarray) -> np.ndarray:
    """Stable uint64 hashes (same on every process, platform and run; unlike Python's hash)."""
    if values.dtype == object:
        return pd.util.hash_array(values, categorize=False)
    return pd.util.hash_array(np.ascontiguousarray(values), categorize=False)


def float_values(series: pd.Series, keep_float32: bool = False) -> np.ndarray:
    """A numeric column as a float64 array with NaN for nulls (works for nullable dtypes too);
    ``keep_float32``: a float32 column stays float32 (exact either way)."""
    dtype = series.dtype
    if keep_float32 and getattr(dtype, "numpy_dtype", dtype) == np.float32:
        return series.to_numpy(dtype=np.float32, na_value=np.nan)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One stable uint64 per row from its values (columns in name order; the index is ignored)."""
    ordered = frame[sorted(frame.columns, key=str)]
    return pd.util.hash_pandas_object(ordered, index=False).to_numpy(dtype=np.uint64)


def _cudf_importable() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("cudf", "dask_cudf"))


def gpu_count() -> int:
    """Visible CUDA devices (0 without cuDF or a GPU); never raises."""
    if not _cudf_importable():
        return 0
    try:
        from cudf.utils.gpu_utils import get_gpu_device_count  # type: ignore[import-not-found]

        return int(get_gpu_device_count())
    except Exception:  # noqa: BLE001 - any driver/runtime failure means "no usable GPU"
        return 0


def resolve_backend(name: str = "auto") -> Backend:
    """The DataFrame backend to use: ``pandas``, ``cudf``, or ``auto`` (cuDF if usable)."""
    if name == "pandas":
        return "pandas"
    if name == "cudf":
        if not _cudf_importable():
            raise ConfigError(
                "backend 'cudf' needs the cudf and dask-cudf packages (the GPU environment); "
                "install them or use backend 'pandas' / 'auto'"
            )
        return "cudf"
    if name == "auto":
        return "cudf" if gpu_count() > 0 else "pandas"
    raise ConfigError(f"backend must be 'pandas', 'cudf' or 'auto', got {name!r}")


PARTITION_ROWS = 1 << 19
"""Rows a partition aims at when files hold several row groups: small enough to bound what a
worker holds while transforming one (a few times its in-memory size: its input, every op's
temporaries, the output), large enough that its statistics come in few pieces to ship and merge."""


def read_parquet(
    paths: str | Sequence[str],
    backend: str = "auto",
    columns: Sequence[str] | None = None,
    partition_rows: int | None = PARTITION_ROWS,
) -> Any:
    """A Dask DataFrame over Parquet on the chosen backend (dask-cudf for ``cudf``).

    Each partition is whole row groups of one file, about ``partition_rows`` rows (``None``:
    one partition per file). A file written as one row group stays one partition. On pandas,
    local files are read with their string columns dictionary-encoded, as Parquet stores them
    (``parquet_reader``: Categorify then works on each distinct value once); hive-partitioned
    or remote data goes through Dask's reader.
    """
    import dask
    import dask.dataframe as dd

    from .parquet_reader import local_files, read_row_groups

    chosen = resolve_backend(backend)
    if chosen == "pandas" and (files := local_files(paths)) is not None:
        frame = read_row_groups(files, partition_rows, columns)
        if frame is not None:
            return frame
    with dask.config.set({"dataframe.backend": chosen}):
        return dd.read_parquet(
            paths if isinstance(paths, str) else list(paths),
            columns=list(columns) if columns is not None else None,
            split_row_groups=_row_groups_per_partition(paths, partition_rows),
        )


def _row_groups_per_partition(paths: str | Sequence[str], partition_rows: int | None) -> Any:
    """Dask's ``split_row_groups`` for about ``partition_rows`` rows, judged by the first file
    (Dask's own ``"infer"`` judges by encoded bytes, which dictionary encoding shrinks, so it
    keeps large files whole)."""
    if partition_rows is None:
        return "infer"
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    files = ds.dataset(paths if isinstance(paths, str) else list(paths), format="parquet").files
    if not files:
        return "infer"  # Dask's own error names the path
    meta = pq.ParquetFile(files[0]).metadata
    if meta.num_row_groups <= 1:
        return False
    per_group = max(1, meta.num_rows // meta.num_row_groups)
    groups = max(1, round(partition_rows / per_group))
    return groups if groups < meta.num_row_groups else False


def like(frame: pd.DataFrame, template: Any) -> Any:
    """``frame`` on the backend of ``template`` (back to the GPU for a cuDF partition)."""
    if _is_cudf(template):
        import cudf  # type: ignore[import-not-found]

        return cudf.DataFrame.from_pandas(frame)
    return frame
