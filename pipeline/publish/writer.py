"""Publish a night's lists to Redis: write a version, verify it, flip the pointer, retire old ones.

Order of a publish (keys in ``pipeline.publish.keys``), under the namespace lock:

1. delete leftovers: versions in the ``cleanup`` set (a failed publish, an interrupted retirement),
   and, in a namespace with no version recorded at all (Redis restarted empty), every user key;
2. pick the version name and add it to ``cleanup`` (so a crash from here on is cleaned next time);
3. every Dask partition writes its users from the worker and returns counts and a small sample;
4. verify: no user in two partitions, every partition user written, a random sample read back;
5. write the fallback list and the version's meta hash;
6. one atomic script sets ``current``, appends the version to ``versions``, trims the list to
   ``keep_versions`` and moves the trimmed versions to ``cleanup``: readers see the old night or the
   new one, never half of one; nothing before this step changes what they see;
7. delete the retired versions' keys (SCAN MATCH + UNLINK, in batches).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import dask
import numpy as np
import pandas as pd
import redis

from pipeline.errors import DataError, RecpipeError, StoreUnavailableError
from pipeline.publish.connect import (
    Client,
    mask_url,
    redis_connection,
    resolved_url,
    scan_delete,
    unavailable,
)
from pipeline.publish.keys import Keys, check_name, encode, plain_items, plain_scores
from pipeline.publish.lock import NamespaceLock, PublishError
from pipeline.publish.partition import COLUMNS, digest, write_partition

log = logging.getLogger(__name__)

_FLIP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('recpipe: the namespace lock was lost before the pointer flip')
end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  return {}  -- a retry after a reply lost to a stalled Redis: flipped already
end
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('SREM', KEYS[4], ARGV[2])
local keep = tonumber(ARGV[3])
local n = redis.call('LLEN', KEYS[3])
local retired = {}
if n > keep then
  retired = redis.call('LRANGE', KEYS[3], 0, n - keep - 1)
  redis.call('LTRIM', KEYS[3], n - keep, -1)
  redis.call('SADD', KEYS[4], unpack(retired))
end
redis.call('SET', KEYS[2], ARGV[2])
return retired
"""

_ROLLBACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('recpipe: the namespace lock was lost before the rollback')
end
local current = redis.call('GET', KEYS[2])
if current ~= ARGV[2] then
  if redis.call('SISMEMBER', KEYS[5], ARGV[2]) == 1 then
    return {ARGV[2], current}  -- a retry after a reply lost to a stalled Redis: done already
  end
  return redis.error_reply('recpipe: current changed while rolling back; run it again')
end
local n = redis.call('LLEN', KEYS[3])
local newest = redis.call('LINDEX', KEYS[3], -1)
if redis.call('GET', KEYS[2]) ~= newest then
  return redis.error_reply('recpipe: current is not the newest kept version; fix it by hand')
end
if n < 2 then
  return redis.error_reply('recpipe: no earlier kept version to roll back to')
end
redis.call('RPOP', KEYS[3])
local previous = redis.call('LINDEX', KEYS[3], -1)
redis.call('SADD', KEYS[4], newest)
redis.call('SADD', KEYS[5], newest)
redis.call('SET', KEYS[2], previous)
return {newest, previous}
"""


_LOCK_LOST = "the namespace lock was lost"


def _stalled(redis_url: str, namespace: str, outcome: str) -> StoreUnavailableError:
    """The lock expired under us: Redis stalled (paused, swapping, a slow disk) or restarted
    empty, which is a store problem (exit 3), not bad input."""
    return StoreUnavailableError(
        f"Redis at {mask_url(redis_url)} stalled or restarted while working on namespace "
        f"{namespace!r}: {_LOCK_LOST} before the pointer flip ({outcome}). Check the Redis "
        "server (paused, swapping, slow disk), then run again"
    )


@dataclass(frozen=True)
class PublishReport:
    """What a publish did. ``keys_written`` counts user keys plus the fallback and meta keys;
    ``removed_versions`` lists versions whose keys were deleted (retired or failed leftovers)."""

    version: str
    users: int
    keys_written: int
    seconds: float
    removed_versions: list[str] = field(default_factory=list)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def current_version(redis_url: str, namespace: str) -> str | None:
    """The version readers get now, or None before the first publish."""
    keys = Keys(namespace)
    with redis_connection(redis_url) as r:
        return _text(r.get(keys.current))


def version_stands(redis_url: str, namespace: str, version: str | None) -> bool:
    """True while ``version`` is current, or once it was rolled back: a rollback is an
    operator's decision, so re-running that night must not quietly publish it again."""
    keys = Keys(namespace)
    with redis_connection(redis_url) as r:
        if version is None:
            return False
        if _text(r.get(keys.current)) == version:
            return True
        if not r.sismember(keys.rolled_back, version):
            return False
    log.warning("version %s of namespace %r was rolled back: its night is not published again "
                "(current stays %s); pass --force to publish a new version anyway", version,
                namespace, current_version(redis_url, namespace))
    return True


def list_versions(redis_url: str, namespace: str) -> list[str]:
    """Kept versions, oldest first (the last one is current)."""
    keys = Keys(namespace)
    with redis_connection(redis_url) as r:
        return [v.decode() for v in r.lrange(keys.versions, 0, -1)]


def _id_type(dtype: Any, column: str) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        raise DataError(f"column {column!r} is boolean; ids must be int64 or string")
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "str"
    raise DataError(f"column {column!r} has dtype {dtype}; ids must be int64 or string")


def _check_frame(lists: Any) -> dict[str, str]:
    """Check columns and dtypes from the frame's meta (no compute); return the id types."""
    columns = getattr(lists, "columns", None)
    if columns is None or not hasattr(lists, "to_delayed"):
        raise DataError(f"lists must be a dask.dataframe.DataFrame, got {type(lists).__name__}")
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise DataError(
            f"lists is missing column(s) {missing}; expected user_id, rank, item_id, score "
            f"(and source), got {list(columns)}"
        )
    dtypes = lists.dtypes
    for column in ("rank", "score"):
        if not pd.api.types.is_numeric_dtype(dtypes[column]):
            raise DataError(f"column {column!r} has dtype {dtypes[column]}; it must be numeric")
    return {
        "user_id_type": _id_type(dtypes["user_id"], "user_id"),
        "item_id_type": _id_type(dtypes["item_id"], "item_id"),
    }


def _delete_versions(r: Client, keys: Keys, versions: Sequence[str]) -> list[str]:
    """Delete every key of ``versions`` (never a kept or current one), on every primary."""
    kept = {v.decode() for v in r.lrange(keys.versions, 0, -1)} | {_text(r.get(keys.current))}
    doomed = sorted(set(versions) - kept)
    if not doomed:
        if versions:
            r.srem(keys.cleanup, *versions)
        return []
    # One scan for all of them; a single version gets the narrower pattern.
    pattern = keys.user_pattern(doomed[0] if len(doomed) == 1 else "*")
    prefixes = tuple(keys.user_prefix(v).encode() for v in doomed)
    scan_delete(r, pattern, keep=lambda key: not key.startswith(prefixes))
    for v in doomed:  # one key per command: fine in a cluster whatever the slots
        r.unlink(keys.meta(v))
        r.unlink(keys.fallback(v))
    r.srem(keys.cleanup, *versions)  # last: an interrupted delete is retried next time
    return doomed


def _sweep_unrecorded(r: Client, keys: Keys) -> None:
    """A namespace with no version and no pointer has lost its records (Redis restarted
    without its data); keys a publish wrote after that are recorded nowhere, so every user key
    of the namespace is a leftover. Only then is the whole namespace scanned."""
    if r.exists(keys.versions) or r.get(keys.current) is not None:
        return
    swept = scan_delete(r, keys.user_pattern("*"))
    if swept:
        log.warning("deleted %d unrecorded user keys of namespace %s (left by a publish that "
                    "lost its Redis mid-way)", swept, keys.namespace)


def _new_version(r: Client, keys: Keys, version: str | None, avoid: Sequence[str] = ()) -> str:
    """``version`` if free, else a new UTC timestamp name (never one in ``avoid``: versions of
    failed publishes just deleted, whose stray writers might still be running)."""
    taken = {v.decode() for v in r.lrange(keys.versions, 0, -1)}
    if version is not None:
        check_name(version, "version")
        if version in taken or r.exists(keys.meta(version)):
            raise PublishError(
                f"version {version!r} already exists in namespace {keys.namespace!r}; "
                "choose another name or leave version unset for a timestamp"
            )
        return version
    base = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate, n = base, 0
    while candidate in taken or candidate in avoid or r.exists(keys.meta(candidate)):
        n += 1
        candidate = f"{base}-{n:02d}"
    return candidate


def _write_all(
    lists: Any, redis_url: str, prefix: str, ttl: int | None, sample: int, seed: int
) -> list[dict[str, Any]]:
    """Run ``write_partition`` on every partition, where the partition is."""
    write = dask.delayed(write_partition, pure=False)
    tasks = [
        write(part, redis_url, prefix, index=i, ttl_seconds=ttl, sample_size=sample, seed=seed)
        for i, part in enumerate(lists.to_delayed())
    ]
    return list(dask.compute(*tasks))


def _check_counts(results: list[dict[str, Any]]) -> int:
    users = sum(r["users"] for r in results)
    written = sum(r["created"] + r["rewritten"] for r in results)
    conflicts = sum(r["conflicts"] for r in results)
    if conflicts:
        examples = [u for r in results for u in r["conflict_users"]][:5]
        raise DataError(
            f"{conflicts} user(s) appear in more than one partition (e.g. user_id {examples}); "
            "partition lists by user_id (e.g. shuffle on user_id) so each user is in one partition"
        )
    if written != users:
        raise PublishError(f"wrote {written} user keys but the partitions hold {users} users")
    if users == 0:
        raise DataError("lists has no rows; nothing to publish (the current version is kept)")
    return users


def _verify_sample(r: Client, results: list[dict[str, Any]], size: int, seed: int) -> None:
    """Read back ``size`` users drawn uniformly from all partitions and compare digests."""
    counts = np.array([res["users"] for res in results])
    total = int(counts.sum())
    size = min(size, total)
    if size <= 0:
        return
    positions = np.random.default_rng(seed).choice(total, size=size, replace=False)
    owners = np.searchsorted(np.cumsum(counts), positions, side="right")
    per_partition = np.bincount(owners, minlength=len(results))
    # Each partition's sample is a uniform random subset in random order: its first c entries are a
    # uniform draw of c of its users.
    sample = [
        pair for res, c in zip(results, per_partition, strict=True) for pair in res["sample"][:c]
    ]
    with r.pipeline(transaction=False) as pipe:
        for key, _ in sample:
            pipe.get(key)
        stored = pipe.execute()
    bad = [key for (key, want), got in zip(sample, stored, strict=True)
           if got is None or digest(got) != want]  # fmt: skip
    if bad:
        raise PublishError(
            f"read-back check failed for {len(bad)} of {len(sample)} sampled users "
            f"(e.g. {bad[:3]}): keys missing or changed after writing; is Redis evicting keys "
            "(maxmemory-policy) or is another process writing this namespace?"
        )


def publish_lists(
    lists: Any,
    redis_url: str,
    namespace: str,
    *,
    fallback_items: Sequence[Any],
    fallback_scores: Sequence[float] | None = None,
    keep_versions: int = 3,
    version: str | None = None,
    verify_sample: int = 100,
    ttl_seconds: int | None = None,
    seed: int | None = None,
) -> PublishReport:
    """Publish ``lists`` (a Dask DataFrame, one user's rows in one partition) as a new version.

    The current version changes only if every step succeeds; on any error it is untouched and the
    partial keys are deleted by the next publish. ``fallback_scores`` default to 0.0 (no score).
    """
    started = time.perf_counter()
    keys = Keys(namespace)
    id_types = _check_frame(lists)
    if keep_versions < 1:
        raise PublishError(f"keep_versions must be at least 1, got {keep_versions}")
    if ttl_seconds is not None and ttl_seconds < 1:
        raise PublishError(f"ttl_seconds must be a positive number of seconds, got {ttl_seconds}")
    fb_items = plain_items(fallback_items, "fallback_items")
    fb_scores = plain_scores(
        [0.0] * len(fb_items) if fallback_scores is None else fallback_scores, "fallback_scores"
    )
    if len(fb_scores) != len(fb_items):
        raise DataError(
            f"fallback_scores has {len(fb_scores)} values for {len(fb_items)} fallback_items"
        )
    seed = int(np.random.default_rng().integers(2**31)) if seed is None else seed

    r = redis_connection(redis_url)
    try:
        with NamespaceLock(r, keys.lock) as lock:
            removed = _delete_versions(r, keys, [v.decode() for v in r.smembers(keys.cleanup)])
            _sweep_unrecorded(r, keys)
            version = _new_version(r, keys, version, avoid=removed)
            r.sadd(keys.cleanup, version)
            before = _text(r.get(keys.current))
            try:
                results = _write_all(
                    lists,
                    resolved_url(redis_url, r),
                    keys.user_prefix(version),
                    ttl_seconds,
                    verify_sample,
                    seed,
                )
                users = _check_counts(results)
                _verify_sample(r, results, verify_sample, seed)
            except RecpipeError as exc:
                raise type(exc)(
                    f"{exc} [version {version} not published; current stays {before}; the next "
                    "publish deletes its partial keys]"
                ) from exc
            except redis.RedisError:
                raise  # handled below, with the URL
            except Exception as exc:
                raise PublishError(
                    f"a partition failed while writing version {version}: "
                    f"{type(exc).__name__}: {exc} [current stays {before}; the next publish "
                    "deletes the partial keys]"
                ) from exc
            meta = {
                "users": users,
                "k": max(res["k"] for res in results),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "partitions": len(results),
                **id_types,
            }
            with r.pipeline(transaction=False) as pipe:
                pipe.set(keys.fallback(version), encode(fb_items, fb_scores))
                pipe.hset(keys.meta(version), mapping=meta)
                pipe.execute()
            flip = r.register_script(_FLIP)
            try:
                retired = flip(
                    keys=[keys.lock, keys.current, keys.versions, keys.cleanup],
                    args=[lock.token, version, keep_versions],
                )
            except redis.ResponseError as exc:
                if _LOCK_LOST in str(exc):
                    raise _stalled(redis_url, namespace, f"version {version} not published; "
                                   f"current stays {before}; the next publish deletes its "
                                   "keys") from exc
                raise PublishError(f"{exc}; version {version} not published") from exc
            removed += _delete_versions(r, keys, [v.decode() for v in retired])
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise unavailable(redis_url, exc) from exc
    except redis.RedisError as exc:
        raise PublishError(f"Redis refused a command publishing {namespace!r}: {exc}") from exc
    finally:
        r.close()
    return PublishReport(
        version=version,
        users=users,
        keys_written=users + 2,
        seconds=time.perf_counter() - started,
        removed_versions=removed,
    )


def rollback(redis_url: str, namespace: str) -> str:
    """Make the previous kept version current again and delete the newer one.

    Returns the version that is current now.
    """
    keys = Keys(namespace)
    r = redis_connection(redis_url)
    try:
        with NamespaceLock(r, keys.lock) as lock:
            newest = _text(r.get(keys.current))
            if newest is None:
                raise PublishError(f"cannot roll back namespace {namespace!r}: nothing is "
                                   "published there")
            script = r.register_script(_ROLLBACK)
            try:  # the version to roll back is an argument, so a retried script is a no-op
                dropped, previous = script(
                    keys=[keys.lock, keys.current, keys.versions, keys.cleanup,
                          keys.rolled_back],
                    args=[lock.token, newest],
                )
            except redis.ResponseError as exc:
                if _LOCK_LOST in str(exc):
                    raise _stalled(redis_url, namespace, "nothing was rolled back") from exc
                raise PublishError(f"cannot roll back namespace {namespace!r}: {exc}") from exc
            _delete_versions(r, keys, [dropped.decode()])
            return previous.decode()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise unavailable(redis_url, exc) from exc
    finally:
        r.close()
