"""Partitioned Parquet in and out, with the schema checks that turn bad input into clear errors.

Inputs are renamed to recpipe's canonical columns on read (``user_id``, ``item_id``,
``timestamp`` as int64 seconds, ``rating``), so every later stage speaks one schema whatever the
source log calls its columns.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.config import InteractionsSpec, SideTableSpec, WorkflowSpec, check_label
from pipeline.errors import DataError

log = logging.getLogger(__name__)

USER, ITEM, TIME, RATING = "user_id", "item_id", "timestamp", "rating"
DAY = 86_400  # seconds: timestamps are int64 epoch seconds after reading


def parquet_files(path: Path, what: str) -> list[Path]:
    """The Parquet files of a file or folder, as a dataset reader finds them (names starting
    with '.' or '_' skipped); clear errors if the path is missing or holds none."""
    if not path.exists():
        raise DataError(f"{what}: {path} does not exist; fix the path in the workflow file "
                        "(relative paths are relative to the workflow file's folder)")
    if path.is_file():
        return [path]
    files = sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part.startswith((".", "_"))
                                   for part in p.relative_to(path).parts)
    )
    if not files:
        raise DataError(f"{what}: {path} holds no Parquet files; write the data there first")
    return files


def read_footers(path: Path, what: str) -> dict[Path, pq.FileMetaData]:
    """Every input file's footer (a few KB each), so a corrupt or truncated file is an error
    naming it before any work starts, not a traceback from a Dask task."""
    footers = {}
    for file in parquet_files(path, what):
        try:
            footers[file] = pq.read_metadata(file)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{what}: {file} is not a readable Parquet file ({exc}); replace "
                            "it, or move it out of the input folder") from None
    return footers


def parquet_schema(path: Path, what: str) -> pa.Schema:
    """The unified schema of a Parquet file or folder; clear errors if missing, empty or a
    file's footer is corrupt."""
    read_footers(path, what)
    try:
        dataset = ds.dataset(path, format="parquet")
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{what}: {path} is not readable as Parquet: {exc}") from None
    return dataset.schema


@contextlib.contextmanager
def naming_bad_file(path: Path, what: str) -> Iterator[None]:
    """Turn a read error raised inside (a Dask task decoding a corrupt page: "Corrupt snappy
    compressed data") into a ``DataError`` naming the file, found by reading each file again."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        for file in parquet_files(path, what):
            try:
                for _ in pq.ParquetFile(file).iter_batches(batch_size=65_536):
                    pass
            except (pa.ArrowException, OSError) as bad:
                raise DataError(f"{what}: {file} cannot be read ({type(bad).__name__}: {bad}); "
                                "replace it, or move it out of the input folder") from exc
        raise


def _require(schema: pa.Schema, columns: dict[str, str], path: Path, what: str) -> None:
    missing = {role: col for role, col in columns.items() if col not in schema.names}
    if missing:
        named = ", ".join(f"'{col}' ({role})" for role, col in missing.items())
        raise DataError(
            f"{what}: {path} has no column {named}; it has: {', '.join(schema.names)}. "
            "Fix the column mapping in the workflow file."
        )


def interaction_roles(spec: InteractionsSpec) -> dict[str, str]:
    """Canonical column -> the interactions' own column name."""
    roles = {USER: spec.columns.user, ITEM: spec.columns.item, TIME: spec.columns.timestamp}
    if spec.columns.rating:
        roles[RATING] = spec.columns.rating
    return roles


def check_interactions(spec: InteractionsSpec) -> pa.Schema:
    """The interactions' schema, once every file's footer, the column mapping and the time
    column's type are checked."""
    schema = parquet_schema(spec.path, "data.interactions")
    _require(schema, interaction_roles(spec), spec.path, "data.interactions")
    time_type = schema.field(spec.columns.timestamp).type
    if not (pa.types.is_integer(time_type) or pa.types.is_timestamp(time_type)):
        raise DataError(
            f"data.interactions: column '{spec.columns.timestamp}' in {spec.path} is {time_type}; "
            "it must be integer epoch seconds or a timestamp"
        )
    return schema


def footer_nulls(path: Path, columns: list[str]) -> tuple[int, dict[str, int] | None]:
    """Rows, and nulls per column, from the files' footer statistics (no data read); None for
    the nulls when a writer left those statistics out."""
    rows, nulls = 0, dict.fromkeys(columns, 0)
    for meta in read_footers(path, "data.interactions").values():
        rows += meta.num_rows
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for column in columns:
                stats = group.column(names.index(column)).statistics
                if stats is None or not stats.has_null_count:
                    return rows, None
                nulls[column] += stats.null_count
    return rows, nulls


def read_interactions(spec: InteractionsSpec) -> dd.DataFrame:
    """The interaction log with canonical column names and int64-seconds timestamps."""
    schema = check_interactions(spec)
    roles = interaction_roles(spec)
    time_type = schema.field(spec.columns.timestamp).type
    frame = dd.read_parquet(spec.path, columns=list(roles.values()))
    frame = frame.rename(columns={src: dst for dst, src in roles.items()})
    if pa.types.is_timestamp(time_type):
        frame[TIME] = frame[TIME].astype("datetime64[s]").astype("int64")
    return frame


def with_relevance(events: dd.DataFrame, spec: WorkflowSpec) -> dd.DataFrame:
    """``events`` with the relevance label ``label.name`` (int8): ``rating >= label.min_value``
    for a rated log; 1 for every event of a log without ratings (clicks, plays, purchases: an
    implicit log needs no rating mapping)."""
    check_label(spec)
    label = spec.label
    if spec.data.interactions.columns.rating is None:
        if "min_value" in label.model_fields_set:
            log.warning("data.interactions maps no rating column: every event counts as "
                        "relevant and label.min_value (%g) is not used", label.min_value)
        return events.assign(**{label.name: np.int8(1)})
    return events.assign(**{label.name: (events[RATING] >= label.min_value).astype("int8")})


def read_side_table(spec: SideTableSpec, key: str, what: str) -> dd.DataFrame:
    """A user or item table keyed by the canonical ``key`` (``user_id`` or ``item_id``)."""
    schema = parquet_schema(spec.path, what)
    _require(schema, {"key": spec.key}, spec.path, what)
    frame = dd.read_parquet(spec.path)
    return frame.rename(columns={spec.key: key}) if spec.key != key else frame


def write_parquet(frame: dd.DataFrame, path: Path) -> None:
    """Write one file per partition (overwriting), the layout every later stage reads."""
    frame.to_parquet(path, write_index=False, overwrite=True)


def stable_unit(ids: np.ndarray | pd.Series, seed: int = 0) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per id and seed (same on every worker and run,
    whatever the id's type)."""
    return _unit(_hash(np.asarray(ids), seed))


def stable_pair_unit(users: np.ndarray, items: np.ndarray, seed: int) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per (user, item) pair and seed."""
    mixed = _hash(users, seed) * np.uint64(0x9E3779B97F4A7C15) + _hash(items, seed + 1)
    return _unit(pd.util.hash_array(mixed))


def _hash(ids: np.ndarray, seed: int) -> np.ndarray:
    """64-bit hashes of ``ids`` under ``seed`` (pandas keys only text hashes: numbers are offset
    by the seed's own hash first)."""
    if ids.dtype.kind in "iub":
        offset = pd.util.hash_array(np.array([seed], dtype=np.int64))[0]
        return pd.util.hash_array(ids.astype(np.int64).view(np.uint64) ^ offset)
    return pd.util.hash_array(ids.astype(str).astype(object),
                              hash_key=f"recpipe{abs(seed) % 10**9:09d}")


def _unit(hashed: np.ndarray) -> np.ndarray:
    return (hashed >> np.uint64(11)).astype(np.float64) / float(2**53)
