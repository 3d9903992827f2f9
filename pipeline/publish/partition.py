"""Worker side of a publish: write one partition's user lists straight to Redis.

Runs inside a Dask task, so the rows never travel to the client; what comes back is a few counts and
a small random sample of (key, digest) pairs for the client's read-back check.

Values are encoded in bulk (``pipeline.publish.values``) and sent as pre-encoded, pipelined
commands (``pipeline.publish.wire``), ``chunk`` users at a time so memory stays bounded by the
partition. A version's keys are new, so the common case is ``MSETNX`` of a few hundred users: the
cheapest write for the server, and its reply (1) proves that none of the keys existed. A chunk that
meets an existing key (reply 0: nothing was written) is written again with ``SET key value GET``,
whose reply classifies each key: nil is a new key; an old value equal to the new one is a re-run of
this task (Dask retries tasks of lost workers); one that differs means the same user sits in two
partitions, which would leave a partial list, so it is reported. With a TTL, or on a Redis Cluster
(where one command's keys must share a slot), every chunk takes the ``SET ... GET`` route.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import redis

from pipeline.errors import DataError
from pipeline.publish import wire
from pipeline.publish.connect import redis_connection, unavailable
from pipeline.publish.lock import PublishError
from pipeline.publish.values import GroupedLists, encode_users, group_partition

COLUMNS = ("user_id", "rank", "item_id", "score")
MSETNX_KEYS = 500  # users per MSETNX: large enough to amortise the command, small to retry


def digest(value: bytes) -> str:
    """Short fingerprint of a stored value (what the read-back check compares)."""
    return hashlib.blake2b(value, digest_size=16).hexdigest()


def _check_values(part: pd.DataFrame, index: int) -> None:
    for column in COLUMNS:
        nulls = int(part[column].isna().sum())
        if nulls:
            raise DataError(
                f"column {column!r} has {nulls} null value(s) in partition {index}; "
                "drop or fill them before publishing"
            )
    scores = part["score"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        user = part["user_id"].iloc[[int(np.flatnonzero(bad)[0])]].tolist()[0]
        raise DataError(
            f"column 'score' has {int(bad.sum())} infinite value(s) in partition {index} "
            f"(first for user_id {user!r}); scores must be finite"
        )


def _write_chunk(
    router: wire.Router,
    keys: pa.StringArray,
    values: pa.StringArray,
    ttl: int | None,
    index: int,
) -> list[Any]:
    """Write one chunk, every node's share sent before any reply is read; replies in row order."""
    commands = wire.set_get_commands(keys, values, ttl)
    sent = []
    for node, rows in router.groups(keys):
        share = commands if not router.cluster else commands.take(pa.array(rows))
        sent.append((rows, wire.Pending(node, wire.contiguous(share), len(rows))))
    replies: list[Any] = [None] * len(keys)
    for rows, pending in sent:
        for row, reply in zip(rows.tolist(), pending.replies(), strict=True):
            replies[row] = reply
    errors = [r for r in replies if isinstance(r, redis.ResponseError)]
    if errors:
        hint = (
            "; the cluster's slots moved during the publish, run it again"
            if any(str(e).startswith(("MOVED", "ASK")) for e in errors)
            else ""
        )
        raise PublishError(
            f"Redis refused {len(errors)} write(s) of partition {index}: {errors[0]}{hint}"
        )
    return replies


def _send_new(client: redis.Redis, keys: pa.StringArray, values: pa.StringArray) -> wire.Pending:
    """Send ``MSETNX`` in groups of ``MSETNX_KEYS``; the replies are read by ``_refused``."""
    parts = wire.msetnx_commands(keys, values, MSETNX_KEYS)
    return wire.Pending(client, parts, len(parts) // 2)


def _refused(pending: wire.Pending) -> list[int]:
    """Starts of the ``MSETNX`` groups refused (reply 0: one of the keys already existed, so
    the group wrote nothing)."""
    replies = pending.replies()
    errors = [r for r in replies if isinstance(r, redis.ResponseError)]
    if errors:
        raise PublishError(f"Redis refused {len(errors)} MSETNX write(s): {errors[0]}")
    return [i * MSETNX_KEYS for i, reply in enumerate(replies) if reply == 0]


def _classify(
    result: dict[str, Any], replies: list[Any], values: pa.StringArray, users: pa.StringArray
) -> None:
    """Count ``SET ... GET`` replies: nil is new, the same old value a re-run, else a conflict."""
    old_rows = [i for i, old in enumerate(replies) if old is not None]
    result["created"] += len(replies) - len(old_rows)
    for i in old_rows:
        if replies[i] == values[i].as_py().encode():
            result["rewritten"] += 1
        else:
            result["conflicts"] += 1
            if len(result["conflict_users"]) < 5:
                result["conflict_users"].append(users[i].as_py())


def write_partition(
    part: pd.DataFrame,
    redis_url: str,
    prefix: str,
    *,
    index: int,
    ttl_seconds: int | None = None,
    chunk: int = 2_000,
    sample_size: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Write every user of ``part`` under ``prefix``; return counts and a read-back sample.

    Users are encoded ``chunk`` at a time, and a chunk's ``MSETNX`` replies are read only after
    the next chunk is encoded and sent: at most two chunks' values are held at once, so a
    worker's memory is bounded by the chunk rather than the partition, and the server can write
    one chunk while this worker encodes the next.
    """
    started = time.perf_counter()
    result: dict[str, Any] = {
        "index": index, "rows": len(part), "users": 0, "created": 0, "rewritten": 0,
        "conflicts": 0, "conflict_users": [], "k": 0, "sample": [], "seconds": 0.0,
    }  # fmt: skip
    if len(part) == 0:
        return result
    _check_values(part, index)
    grouped: GroupedLists = group_partition(part)
    keys = pc.binary_join_element_wise(prefix, grouped.users, "")
    n = len(grouped)
    picked = np.random.default_rng([seed, index]).choice(
        n, size=min(n, sample_size), replace=False
    )
    sample: dict[int, tuple[str, str]] = {}

    def rewrite(lo: int, values: pa.StringArray, starts: list[int], width: int) -> None:
        """``SET ... GET`` the users ``lo + a`` to ``lo + b`` for each start ``a``."""
        for a in starts:
            b = min(a + width, len(values))
            _classify(
                result,
                _write_chunk(router, keys[lo + a : lo + b], values[a:b], ttl_seconds, index),
                values[a:b],
                grouped.users[lo + a : lo + b],
            )

    client = redis_connection(redis_url, timeout=30)
    try:
        router = wire.Router(client)
        bulk = not router.cluster and ttl_seconds is None
        in_flight: tuple[int, pa.StringArray, wire.Pending] | None = None
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            values = encode_users(grouped, lo, hi)
            mine = picked[(picked >= lo) & (picked < hi)]
            for i, value in zip(mine.tolist(), values.take(pa.array(mine - lo)).to_pylist(),
                                strict=True):
                sample[i] = (keys[i].as_py(), digest(value.encode()))
            if not bulk:  # every key the SET GET way, chunk by chunk
                rewrite(lo, values, [0], hi - lo)
                continue
            sent = (lo, values, _send_new(client, keys[lo:hi], values))
            if in_flight is not None:
                _settle(result, in_flight, rewrite)
            in_flight = sent
        if in_flight is not None:
            _settle(result, in_flight, rewrite)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise unavailable(redis_url, exc) from exc
    except redis.RedisError as exc:  # e.g. OOM: maxmemory reached
        raise PublishError(f"Redis refused a write of partition {index}: {exc}") from exc
    finally:
        client.close()

    result["sample"] = [sample[i] for i in picked.tolist()]
    result.update(users=n, k=grouped.k, seconds=time.perf_counter() - started)
    return result


def _settle(
    result: dict[str, Any], in_flight: tuple[int, pa.StringArray, wire.Pending], rewrite: Any
) -> None:
    """Read a chunk's ``MSETNX`` replies: count what was created, send refused groups the
    ``SET ... GET`` way (``rewrite``)."""
    lo, values, pending = in_flight
    starts = _refused(pending)
    result["created"] += len(values) - sum(
        min(a + MSETNX_KEYS, len(values)) - a for a in starts
    )
    rewrite(lo, values, starts, MSETNX_KEYS)
