"""Writing transformed features to Parquet, one file per partition, with feature-aware settings.

Transformed categoricals are small integer codes with long runs of repeats: dictionary encoding
pays for itself there. Continuous values (normalised floats, target encodings) are nearly all
distinct, so dictionary pages only cost time (pyarrow builds, then abandons, a dictionary per
column chunk). So only columns tagged ``categorical`` in the output schema are dictionary encoded,
and of those only the ones whose codes fit one dictionary page: past ``DICTIONARY_PAGE_BYTES``
pyarrow abandons the dictionary too, after building it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.memory import release_free_memory

from .backend import to_pandas
from .base import ColumnSchema

DEFAULT_COMPRESSION = "lz4"
DICTIONARY_PAGE_BYTES = 1 << 20
"""pyarrow's default dictionary page size limit."""


def dictionary_columns(schema: dict[str, ColumnSchema]) -> list[str]:
    """Output columns worth dictionary encoding: the categorical ones whose int64 codes fit
    one dictionary page (a column of unknown cardinality is tried)."""
    return [
        c for c, s in schema.items()
        if "categorical" in s.get("tags", [])
        and (s.get("cardinality") or 0) * 8 <= DICTIONARY_PAGE_BYTES
    ]


def write_table(
    frame: Any, path: str | os.PathLike[str], dictionary: Sequence[str], compression: str
) -> int:
    """Write one in-memory frame as one Parquet file; returns its row count."""
    table = pa.Table.from_pandas(to_pandas(frame), preserve_index=False)
    use = [c for c in dictionary if c in table.column_names]
    pq.write_table(
        table, path, compression=compression, use_dictionary=use or False,
        row_group_size=256 * 1024,
    )
    rows = table.num_rows
    del table
    release_free_memory()  # the partition's columns and buffers (see pipeline.memory)
    return rows


def to_parquet(
    data: Any,
    directory: str | os.PathLike[str],
    schema: dict[str, ColumnSchema] | None = None,
    compression: str = DEFAULT_COMPRESSION,
) -> int:
    """Write ``data`` (Dask: one file per partition, written on the workers) and count rows.

    ``schema`` is a workflow's ``output_schema``; its categorical columns are dictionary encoded.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    dictionary = dictionary_columns(schema or {})
    if not isinstance(data, dd.DataFrame):
        return write_table(data, root / "part_0000.parquet", dictionary, compression)
    width = max(4, len(str(data.npartitions)))
    # One task per partition reads, transforms and writes it (Dask fuses the map into the
    # read): no transformed partition waits in a worker's memory for a separate write task.
    rows = data.map_partitions(
        _write_partition, str(root), width, dictionary, compression,
        meta=pd.Series([], dtype=np.int64), enforce_metadata=False, align_dataframes=False,
    )
    return int(rows.sum().compute())


def _write_partition(
    frame: Any, root: str, width: int, dictionary: Sequence[str], compression: str,
    partition_info: dict[str, Any] | None = None,
) -> pd.Series:
    number = partition_info["number"] if partition_info else 0
    path = Path(root) / f"part_{number:0{width}d}.parquet"
    return pd.Series([write_table(frame, path, dictionary, compression)], dtype=np.int64)
