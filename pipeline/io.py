"""Partitioned Parquet in and out, with the schema checks that turn bad input into clear errors.

Inputs are renamed to recpipe's canonical columns on read (``user_id``, ``item_id``,
``timestamp`` as int64 seconds, ``rating``), so every later stage speaks one schema whatever the
source log calls its columns.
"""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import pyarrow as pa
import pyarrow.dataset as ds

from pipeline.config import InteractionsSpec, SideTableSpec
from pipeline.errors import DataError

USER, ITEM, TIME, RATING = "user_id", "item_id", "timestamp", "rating"
DAY = 86_400  # seconds: timestamps are int64 epoch seconds after reading


def parquet_schema(path: Path, what: str) -> pa.Schema:
    """The unified schema of a Parquet file or folder; clear errors if missing or empty."""
    if not path.exists():
        raise DataError(f"{what}: {path} does not exist; fix the path in the workflow file "
                        "(relative paths are relative to the workflow file's folder)")
    try:
        dataset = ds.dataset(path, format="parquet")
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{what}: {path} is not readable as Parquet: {exc}") from None
    if not dataset.files:
        raise DataError(f"{what}: {path} holds no Parquet files; write the data there first")
    return dataset.schema


def _require(schema: pa.Schema, columns: dict[str, str], path: Path, what: str) -> None:
    missing = {role: col for role, col in columns.items() if col not in schema.names}
    if missing:
        named = ", ".join(f"'{col}' ({role})" for role, col in missing.items())
        raise DataError(
            f"{what}: {path} has no column {named}; it has: {', '.join(schema.names)}. "
            "Fix the column mapping in the workflow file."
        )


def read_interactions(spec: InteractionsSpec) -> dd.DataFrame:
    """The interaction log with canonical column names and int64-seconds timestamps."""
    schema = parquet_schema(spec.path, "data.interactions")
    roles = {USER: spec.columns.user, ITEM: spec.columns.item, TIME: spec.columns.timestamp}
    if spec.columns.rating:
        roles[RATING] = spec.columns.rating
    _require(schema, roles, spec.path, "data.interactions")
    time_type = schema.field(spec.columns.timestamp).type
    if not (pa.types.is_integer(time_type) or pa.types.is_timestamp(time_type)):
        raise DataError(
            f"data.interactions: column '{spec.columns.timestamp}' in {spec.path} is {time_type}; "
            "it must be integer epoch seconds or a timestamp"
        )
    frame = dd.read_parquet(spec.path, columns=list(roles.values()))
    frame = frame.rename(columns={src: dst for dst, src in roles.items()})
    if pa.types.is_timestamp(time_type):
        frame[TIME] = frame[TIME].astype("datetime64[s]").astype("int64")
    return frame


def read_side_table(spec: SideTableSpec, key: str, what: str) -> dd.DataFrame:
    """A user or item table keyed by the canonical ``key`` (``user_id`` or ``item_id``)."""
    schema = parquet_schema(spec.path, what)
    _require(schema, {"key": spec.key}, spec.path, what)
    frame = dd.read_parquet(spec.path)
    return frame.rename(columns={spec.key: key}) if spec.key != key else frame


def write_parquet(frame: dd.DataFrame, path: Path) -> None:
    """Write one file per partition (overwriting), the layout every later stage reads."""
    frame.to_parquet(path, write_index=False, overwrite=True)
