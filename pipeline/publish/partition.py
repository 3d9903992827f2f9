"""Worker side of a publish: write one partition's user lists straight to Redis.

Runs inside a Dask task, so the rows never travel to the client; what comes back is a few counts and
a small random sample of (key, digest) pairs for the client's read-back check.

Each key is written with ``SET ... GET``: a nil reply means a new key. A non-nil reply that equals
the new value is a re-run of this task (Dask retries tasks of lost workers); one that differs means
the same user sits in two partitions, which would leave a partial list, so it is reported.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import pandas as pd
import redis

from pipeline.errors import DataError
from pipeline.publish.embedded import unavailable
from pipeline.publish.keys import encode, round_significant
from pipeline.publish.lock import PublishError

COLUMNS = ("user_id", "rank", "item_id", "score")


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


def group_users(part: pd.DataFrame) -> tuple[list[Any], np.ndarray, list[Any], list[float]]:
    """Sort by (user, rank) and split at user boundaries, vectorised.

    Returns (user ids, boundaries with ``len(users) + 1`` entries, items, rounded scores); user
    ``i`` owns rows ``boundaries[i]:boundaries[i + 1]`` of items and scores.
    """
    ordered = part.sort_values(["user_id", "rank"], kind="stable")
    codes, users = pd.factorize(ordered["user_id"], sort=False)
    starts = np.flatnonzero(np.diff(codes)) + 1
    bounds = np.concatenate(([0], starts, [len(codes)]))
    items = ordered["item_id"].tolist()
    scores = round_significant(ordered["score"].to_numpy(dtype=np.float64)).tolist()
    return list(users.tolist()), bounds, items, scores


def write_partition(
    part: pd.DataFrame,
    redis_url: str,
    prefix: str,
    *,
    index: int,
    ttl_seconds: int | None = None,
    chunk: int = 1000,
    sample_size: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Write every user of ``part`` under ``prefix``; return counts and a read-back sample."""
    started = time.perf_counter()
    result: dict[str, Any] = {
        "index": index, "rows": len(part), "users": 0, "created": 0, "rewritten": 0,
        "conflicts": 0, "conflict_users": [], "k": 0, "sample": [], "seconds": 0.0,
    }  # fmt: skip
    if len(part) == 0:
        return result
    _check_values(part, index)
    users, bounds_array, items, scores = group_users(part)
    bounds = bounds_array.tolist()  # plain ints: faster list slicing in the per-user loop
    n = len(users)

    def value(i: int) -> bytes:
        return encode(items[bounds[i] : bounds[i + 1]], scores[bounds[i] : bounds[i + 1]]).encode()

    client = redis.Redis.from_url(redis_url, socket_timeout=30, socket_connect_timeout=10)
    try:
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            values = [value(i) for i in range(lo, hi)]
            with client.pipeline(transaction=False) as pipe:
                for i, v in zip(range(lo, hi), values, strict=True):
                    pipe.set(f"{prefix}{users[i]}", v, ex=ttl_seconds, get=True)
                olds = pipe.execute()
            for i, (old, new) in enumerate(zip(olds, values, strict=True)):
                if old is None:
                    result["created"] += 1
                elif old == new:
                    result["rewritten"] += 1
                else:
                    result["conflicts"] += 1
                    if len(result["conflict_users"]) < 5:
                        result["conflict_users"].append(users[lo + i])
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise unavailable(redis_url, exc) from exc
    except redis.RedisError as exc:  # e.g. OOM: maxmemory reached
        raise PublishError(f"Redis refused a write of partition {index}: {exc}") from exc
    finally:
        client.close()

    rng = np.random.default_rng([seed, index])
    picked = rng.choice(n, size=min(n, sample_size), replace=False)
    result["sample"] = [(f"{prefix}{users[i]}", digest(value(i))) for i in picked.tolist()]
    k = int(np.diff(bounds_array).max())
    result.update(users=n, k=k, seconds=time.perf_counter() - started)
    return result
