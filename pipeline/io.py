"""Partitioned Parquet in and out, with the schema checks that turn bad input into clear errors.

Inputs are renamed to recpipe's canonical columns on read (``user_id``, ``item_id``,
``timestamp`` as int64 seconds, ``rating``), so every later stage speaks one schema whatever the
source log calls its columns.
"""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from pipeline.config import InteractionsSpec, SideTableSpec, WorkflowSpec
from pipeline.errors import ConfigError, DataError

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


def with_relevance(events: dd.DataFrame, spec: WorkflowSpec) -> dd.DataFrame:
    """``events`` with the relevance label ``label.name`` (int8): ``rating >= label.min_value``
    for a rated log; 1 for every event of a log without ratings (clicks, plays, purchases: an
    implicit log needs no rating mapping)."""
    label, rating = spec.label, spec.data.interactions.columns.rating
    if rating is None:
        if "column" in label.model_fields_set or "min_value" in label.model_fields_set:
            raise ConfigError(
                f"label.column is '{label.column}' but data.interactions.columns has no rating "
                "mapping, so there is nothing to threshold: add 'rating: <your column>' under "
                "data.interactions.columns, or drop label.column and label.min_value to treat "
                "every event as relevant (an implicit log)")
        return events.assign(**{label.name: np.int8(1)})
    if label.column not in (RATING, rating):
        raise ConfigError(
            f"label.column is '{label.column}', but the rating column is '{rating}' "
            f"(data.interactions.columns.rating); set label.column to '{rating}'")
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
