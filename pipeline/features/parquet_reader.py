"""Parquet into Dask partitions of whole row groups, string columns kept dictionary-encoded.

Parquet stores a string column of a log as a dictionary per row group: the distinct values once,
then small integer codes. Dask's reader decodes that into one string per row, and Categorify
then hashes every row to find the distinct values and codes again. Read here, a string column
stays an Arrow dictionary (pandas ``ArrowDtype(dictionary<string>)``): the read skips the
decoding, and Categorify counts and looks up each distinct value once per partition instead of
once per row (``keys.string_dictionary``). Every other op sees ordinary strings.

Partitions are whole row groups of one file, about ``partition_rows`` rows each (each file
judged by its own row groups); hive-partitioned directories and remote filesystems go to Dask's
own reader, as does the cuDF backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.errors import DataError


def string_columns(schema: pa.Schema) -> list[str]:
    """Columns read as dictionaries: plain (or large) strings."""
    return [f.name for f in schema
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def pandas_dtype(arrow_type: pa.DataType) -> Any:
    """The pandas dtype a column arrives as; None: pyarrow's default conversion.

    Strings and dates as Dask's reader gives them with ``dataframe.convert-string`` on (its
    default); string dictionaries as Arrow-backed columns (a pandas Categorical would build a
    hash table of every row group's distinct values, which is the work this module avoids).
    """
    if pa.types.is_dictionary(arrow_type):
        value = arrow_type.value_type
        if pa.types.is_string(value) or pa.types.is_large_string(value):
            return pd.ArrowDtype(arrow_type)
        return None
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow") if dask.config.get("dataframe.convert-string") else None
    if pa.types.is_date(arrow_type) or pa.types.is_decimal(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return None


class RowGroupReader:
    """Reads one partition (a file's path and row group ids) as a pandas DataFrame.

    Dask calls it with ``columns=`` when a computation needs only some columns (the fitting
    passes of a workflow), so only those are read.
    """

    def __init__(self, first_file: str) -> None:
        self.first_file = first_file
        self.dictionary_columns = string_columns(pq.read_schema(first_file))
        with pq.ParquetFile(first_file, read_dictionary=self.dictionary_columns) as file:
            self.schema = file.schema_arrow  # as the reads give it (large strings: plain ones)
        self.index_columns = [c for c in (self.schema.pandas_metadata or {}).get(
            "index_columns", []) if isinstance(c, str)]

    def __call__(self, piece: tuple[str, tuple[int, ...]],
                 columns: Sequence[str] | None = None) -> pd.DataFrame:
        path, row_groups = piece
        wanted = list(columns) if columns is not None else self.data_columns()
        read = [*wanted, *(c for c in self.index_columns if c not in wanted)]
        dictionary = [c for c in self.dictionary_columns if c in read]
        try:
            try:
                file = pq.ParquetFile(path, read_dictionary=dictionary, pre_buffer=True)
            except KeyError:  # a string column this file lacks: said below
                file = pq.ParquetFile(path)
            with file:
                missing = [c for c in read if c not in file.schema_arrow.names]
                if missing:
                    raise DataError(
                        f"{path} lacks column(s) {missing!r} that the dataset's first file "
                        f"({self.first_file}) has; give every file the same columns"
                    )
                table = file.read_row_groups(list(row_groups), columns=read,
                                             use_threads=False, use_pandas_metadata=False)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read row groups {list(row_groups)} of {path}: {exc}") from exc
        return self.to_pandas(table)[wanted]

    def data_columns(self) -> list[str]:
        return [n for n in self.schema.names if n not in self.index_columns]

    def to_pandas(self, table: pa.Table) -> pd.DataFrame:
        if self.index_columns:  # the stored index, as pandas wrote it
            table = table.replace_schema_metadata(self.schema.metadata)
        return table.to_pandas(types_mapper=pandas_dtype, use_threads=False,
                               ignore_metadata=not self.index_columns)

    def meta(self) -> pd.DataFrame:
        """The empty frame every partition looks like."""
        return self.to_pandas(self.schema.empty_table())[self.data_columns()]


def pieces(files: Sequence[str], partition_rows: int | None) -> list[tuple[str, tuple[int, ...]]]:
    """(path, row group ids) of each partition: consecutive row groups of one file, about
    ``partition_rows`` rows (``None``: whole files)."""
    out = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        n = meta.num_row_groups
        if n == 0:
            continue
        per_group = max(1, meta.num_rows // n)
        step = n if partition_rows is None else max(1, round(partition_rows / per_group))
        out.extend((path, tuple(range(i, min(i + step, n)))) for i in range(0, n, step))
    return out


def local_files(paths: str | Sequence[str]) -> list[str] | None:
    """The Parquet files to read, when this reader can: local files or a flat directory of
    them; None for what it leaves to Dask (hive partitions, remote filesystems, no files)."""
    try:
        dataset = ds.dataset(paths if isinstance(paths, str) else list(paths), format="parquet",
                             partitioning="hive")
    except (OSError, ValueError, pa.ArrowException):
        return None  # Dask's reader raises its own error, naming the path
    if not isinstance(dataset.filesystem, pa.fs.LocalFileSystem) or not dataset.files:
        return None
    if set(dataset.schema.names) - set(pq.read_schema(dataset.files[0]).names):
        return None  # columns from hive directory names
    return list(dataset.files)


def read_row_groups(files: Sequence[str], partition_rows: int | None,
                    columns: Sequence[str] | None = None) -> Any:
    """A Dask DataFrame over ``files`` (see the module docstring); None if they hold no rows."""
    import dask.dataframe as dd

    parts = pieces(files, partition_rows)
    if not parts:
        return None
    reader = RowGroupReader(files[0])
    meta = reader.meta()
    frame = dd.from_map(reader, parts, meta=meta, label="read-parquet", enforce_metadata=False)
    return frame[list(columns)] if columns is not None else frame
