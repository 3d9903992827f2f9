"""Rows the prepare stage cannot use or would count twice: null ids and duplicate events.

Why: a null user or item id crashes training far from its cause, a null time has no place on
the timeline, and a log appended twice silently doubles every count; each is counted for the
manifest and named in a warning instead.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa

from pipeline.config import InteractionsSpec
from pipeline.errors import DataError
from pipeline.io import (
    ITEM,
    TIME,
    USER,
    check_interactions,
    footer_nulls,
    interaction_roles,
    read_interactions,
)

log = logging.getLogger(__name__)
EVENT_KEY = [USER, ITEM, TIME]


class UsableLog(NamedTuple):
    events: dd.DataFrame
    dropped: dict[str, int]  # null_user, null_item: rows with a null id of that kind
    rows: int  # rows kept


def read_usable_interactions(spec: InteractionsSpec) -> UsableLog:
    """The log without rows whose user or item id is null, counted; a null time is a
    ``DataError`` naming the column. Counts come from the files' footer statistics (a read of
    the id columns only where a writer left them out or null ids must be dropped)."""
    schema = check_interactions(spec)
    roles = interaction_roles(spec)
    columns = [roles[USER], roles[ITEM], roles[TIME]]
    rows, nulls = footer_nulls(spec.path, columns)
    if nulls is None:
        frame = dd.read_parquet(spec.path, columns=columns)
        counts = dask.compute(*(frame[c].isna().sum() for c in columns))
        nulls = {c: int(n) for c, n in zip(columns, counts, strict=True)}
    if nulls[roles[TIME]]:
        raise DataError(
            f"data.interactions: column '{roles[TIME]}' in {spec.path} has {nulls[roles[TIME]]} "
            "null value(s); every event needs a time: fill them or drop those rows from the log"
        )
    events = read_interactions(spec)
    dropped = {"null_user": nulls[roles[USER]], "null_item": nulls[roles[ITEM]]}
    if not any(dropped.values()):
        return UsableLog(events, dropped, rows)
    log.warning("data.interactions: dropped the rows with a null user id (%d, column '%s') or "
                "a null item id (%d, column '%s') in %s", dropped["null_user"], roles[USER],
                dropped["null_item"], roles[ITEM], spec.path)
    events = events.dropna(subset=[USER, ITEM])
    # a null turned the integer ids into floats: back to the file's integers
    ints = {c: "int64" for c in (USER, ITEM) if pa.types.is_integer(schema.field(roles[c]).type)}
    events = events.astype(ints) if ints else events
    return UsableLog(events, dropped, int(events.shape[0].compute()))


def _duplicates_in(part: pd.DataFrame) -> pd.Series:
    return pd.Series([int(part.duplicated(EVENT_KEY).sum())], dtype="int64")


def duplicate_count(events: dd.DataFrame) -> Any:
    """Lazy count of rows repeating an earlier (user, item, time) row; exact when each user's
    rows lie in one partition (the prepare stage's layout)."""
    return events.map_partitions(_duplicates_in, meta=pd.Series(dtype="int64")).sum()


def _drop_duplicates(part: pd.DataFrame) -> pd.DataFrame:
    return part.drop_duplicates(EVENT_KEY)


def without_duplicates(events: dd.DataFrame) -> dd.DataFrame:
    """Each (user, item, time) once (``data.drop_duplicates``); needs the by-user layout."""
    return events.map_partitions(_drop_duplicates, meta=events._meta)


def report_duplicates(count: int, dropped: bool, path: object) -> None:
    if count:
        log.warning("data.interactions: %d duplicate (user, item, timestamp) row(s) in %s; %s",
                    count, path, "dropped (data.drop_duplicates)" if dropped else
                    "kept and counted twice: set data.drop_duplicates: true to drop them")
