"""Publishing lists to a real Redis from real Dask: versions, verification, flip, retention."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import redis

from pipeline.errors import ConfigError, DataError, StoreUnavailableError
from pipeline.publish import (
    PublishError,
    current_version,
    list_versions,
    publish_lists,
    rollback,
)
from pipeline.publish.keys import Keys, round_significant
from pipeline.publish.lock import NamespaceLock

FALLBACK = [901, 902, 903]


def make_lists(
    n_users: int = 400,
    max_k: int = 12,
    *,
    npartitions: int = 4,
    string_ids: bool = False,
    seed: int = 0,
) -> tuple[dd.DataFrame, dict[object, tuple[list[object], list[float]]]]:
    """Lists with 1..max_k rows per user, one user per partition, rows shuffled within partitions.

    Returns the Dask frame and the expected stored list per user (rank order, rounded scores).
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_k + 1, n_users)
    users = np.repeat(np.arange(n_users), lengths)
    ranks = np.concatenate([np.arange(1, n + 1) for n in lengths])
    items = rng.integers(0, 10_000, len(users))
    frame = pd.DataFrame(
        {
            "user_id": [f"user-{u}" for u in users] if string_ids else users.astype("int64"),
            "rank": ranks,
            "item_id": [f"item-{i}" for i in items] if string_ids else items.astype("int64"),
            "score": rng.random(len(users)) * 10,
            "source": "test",
        }
    )
    expected = {
        user: (group["item_id"].tolist(), round_significant(group["score"].to_numpy()).tolist())
        for user, group in frame.groupby("user_id", sort=False)
    }
    lists = (
        dd.from_pandas(frame.set_index("user_id").sort_index(), npartitions=npartitions)
        .reset_index()
        .map_partitions(lambda part: part.sample(frac=1.0, random_state=1))
    )
    return lists, expected


@pytest.fixture
def ns(redis_url: str) -> Iterator[str]:
    """A fresh namespace; its keys are deleted afterwards (REDIS_URL may be a shared server)."""
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    r = redis.Redis.from_url(redis_url)
    for pattern in (f"recpipe:{name}:*", f"recpipe:{{{name}}}:*"):
        for key in r.scan_iter(match=pattern, count=1000):
            r.unlink(key)
    r.close()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def user_keys(r: redis.Redis, ns: str, version: str) -> list[bytes]:
    return list(r.scan_iter(match=Keys(ns).user_pattern(version), count=1000))


@pytest.mark.parametrize("string_ids", [False, True], ids=["int-ids", "string-ids"])
def test_publish_then_read_back_every_user(
    dask_client: object, redis_url: str, r: redis.Redis, ns: str, string_ids: bool
) -> None:
    lists, expected = make_lists(string_ids=string_ids)
    report = publish_lists(lists, redis_url, ns, fallback_items=FALLBACK, fallback_scores=[3, 2, 1])

    keys = Keys(ns)
    assert report.users == len(expected)
    assert report.keys_written == len(expected) + 2
    assert current_version(redis_url, ns) == report.version
    assert list_versions(redis_url, ns) == [report.version]
    stored = r.mget([keys.user(report.version, user) for user in expected])
    for (user, (items, scores)), raw in zip(expected.items(), stored, strict=True):
        assert raw is not None, user
        assert json.loads(raw) == {"items": items, "scores": scores}
        assert b" " not in raw  # compact JSON
    assert len(user_keys(r, ns, report.version)) == len(expected)
    assert json.loads(r.get(keys.fallback(report.version))) == {
        "items": FALLBACK,
        "scores": [3.0, 2.0, 1.0],
    }
    meta = r.hgetall(keys.meta(report.version))
    assert int(meta[b"users"]) == len(expected)
    assert int(meta[b"k"]) == max(len(items) for items, _ in expected.values())
    assert meta[b"user_id_type"] == (b"str" if string_ids else b"int")
    assert not r.exists(keys.lock) and not r.smembers(keys.cleanup)


def test_pointer_is_written_after_every_user_key(
    dask_client: object, redis_url: str, r: redis.Redis, ns: str
) -> None:
    """MONITOR on a second connection records the server's command order during a publish."""
    lists, expected = make_lists(n_users=300)
    keys = Keys(ns)
    commands: list[str] = []
    ready, sentinel = threading.Event(), f"stop-{ns}"

    def watch() -> None:
        # No read timeout: on a busy machine the publish may take longer than the default 5 s.
        with redis.Redis.from_url(redis_url, socket_timeout=None).monitor() as monitor:
            ready.set()
            for event in monitor.listen():
                if sentinel in event["command"]:
                    return
                if ns in event["command"]:
                    commands.append(event["command"])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(5)
    report = publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)
    r.echo(sentinel)
    thread.join(10)

    def positions(name: str, prefix: str) -> list[int]:
        return [
            i
            for i, c in enumerate(commands)
            if c.split(" ")[0].upper() == name and c.split(" ")[1].startswith(prefix)
        ]

    user_prefix = keys.user_prefix(report.version)
    user_writes = positions("MSETNX", user_prefix) + positions("SET", user_prefix)

    def keys_written(command: str) -> list[str]:
        name, *args = command.split(" ")
        return args[0::2] if name.upper() == "MSETNX" else args[:1]  # MSETNX k v k v ...

    written = {key for i in user_writes for key in keys_written(commands[i])}
    pointer_writes = positions("SET", keys.current)
    assert written == {f"{user_prefix}{user}" for user in expected}
    assert len(pointer_writes) == 1
    assert pointer_writes[0] > max(user_writes)
    assert pointer_writes[0] > max(positions("SET", keys.fallback(report.version)))
    assert pointer_writes[0] > max(positions("HSET", keys.meta(report.version)))


def test_failing_partition_keeps_current_and_next_publish_cleans_up(
    dask_client: object, redis_url: str, r: redis.Redis, ns: str
) -> None:
    lists, _ = make_lists(npartitions=4)
    good = publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)

    def poison(part: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
        if partition_info is not None and partition_info["number"] == 3:
            part = part.copy()
            part.loc[part.index[0], "score"] = np.inf
        return part

    bad_lists = lists.map_partitions(poison, meta=lists._meta)
    with pytest.raises(DataError, match="infinite") as info:
        publish_lists(bad_lists, redis_url, ns, fallback_items=FALLBACK)
    assert good.version in str(info.value)  # "current stays ..."
    assert current_version(redis_url, ns) == good.version
    assert list_versions(redis_url, ns) == [good.version]
    (failed,) = [v.decode() for v in r.smembers(Keys(ns).cleanup)]
    assert failed != good.version
    assert user_keys(r, ns, failed), "the other partitions left partial keys"

    nxt = publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)
    assert failed in nxt.removed_versions
    assert nxt.version != failed
    assert user_keys(r, ns, failed) == []
    assert list_versions(redis_url, ns) == [good.version, nxt.version]
    assert not r.smembers(Keys(ns).cleanup)


def test_keys_left_after_redis_lost_its_records_are_swept(
    dask_client: object, redis_url: str, r: redis.Redis, ns: str
) -> None:
    """Redis restarted empty while a publish was writing: its keys are recorded nowhere (no
    version list, no cleanup set); the next publish deletes them."""
    keys = Keys(ns)
    r.set(keys.user("20260101T000000Z", 1), "{}")
    r.set(keys.user("20260101T000000Z", 2), "{}")
    lists, _ = make_lists(npartitions=2)
    report = publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)
    assert user_keys(r, ns, "20260101T000000Z") == []
    assert user_keys(r, ns, report.version)
    again = publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)  # a normal night
    assert user_keys(r, ns, report.version) and user_keys(r, ns, again.version)


def test_user_split_across_partitions_is_refused(
    dask_client: object, redis_url: str, ns: str
) -> None:
    rows = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3, 1],
            "rank": [1, 2, 1, 1, 3],
            "item_id": [10, 11, 12, 13, 14],
            "score": [0.9, 0.8, 0.7, 0.6, 0.5],
            "source": "test",
        }
    )
    lists = dd.from_pandas(rows, npartitions=2, sort=False)
    assert lists.npartitions == 2
    with pytest.raises(DataError, match="more than one partition"):
        publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)
    assert current_version(redis_url, ns) is None


@pytest.mark.parametrize("chunk", [2_000, 700, 500])  # one chunk; chunks in flight, unaligned
def test_partition_rewrite_and_partly_written_groups_are_classified(
    redis_url: str, r: redis.Redis, ns: str, chunk: int
) -> None:
    """A retried task finds its own values (rewritten); a group with one old key still lands."""
    from pipeline.publish.partition import MSETNX_KEYS, write_partition

    n = MSETNX_KEYS * 2 + 7
    part = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(n), 2),
            "rank": np.tile([1, 2], n),
            "item_id": np.arange(2 * n),
            "score": np.linspace(1.0, 0.5, 2 * n),
        }
    )
    prefix = f"recpipe:{{{ns}}}:test{chunk}:"
    first = write_partition(part, redis_url, prefix, index=0, chunk=chunk)
    assert (first["created"], first["rewritten"], first["conflicts"]) == (n, 0, 0)
    again = write_partition(part, redis_url, prefix, index=0, chunk=chunk)
    assert (again["created"], again["rewritten"], again["conflicts"]) == (0, n, 0)

    # Drop all but one key of the second MSETNX group: that group is refused as a whole and
    # rewritten key by key, so the missing users come back and the one left counts as rewritten.
    r.unlink(*[f"{prefix}{u}" for u in range(MSETNX_KEYS + 1, 2 * MSETNX_KEYS)])
    r.set(f"{prefix}{3}", b"other")  # and one user whose stored list differs: a conflict
    mixed = write_partition(part, redis_url, prefix, index=0, chunk=chunk)
    assert mixed["created"] == MSETNX_KEYS - 1
    assert mixed["conflicts"] == 1 and mixed["conflict_users"] == ["3"]
    assert mixed["rewritten"] == n - MSETNX_KEYS
    assert r.exists(*[f"{prefix}{u}" for u in range(n)]) == n


def test_retention_keeps_the_last_versions(
    dask_client: object, redis_url: str, r: redis.Redis, ns: str
) -> None:
    lists, expected = make_lists(n_users=100, npartitions=2)
    reports = [
        publish_lists(lists, redis_url, ns, fallback_items=FALLBACK, keep_versions=2)
        for _ in range(3)
    ]
    versions = [report.version for report in reports]
    assert versions == sorted(versions) and len(set(versions)) == 3  # sortable, unique
    assert list_versions(redis_url, ns) == versions[1:]
    assert current_version(redis_url, ns) == versions[2]
    assert reports[2].removed_versions == [versions[0]]
    keys = Keys(ns)
    assert user_keys(r, ns, versions[0]) == []
    assert not r.exists(keys.meta(versions[0]), keys.fallback(versions[0]))
    for kept in versions[1:]:
        assert len(user_keys(r, ns, kept)) == len(expected)


def test_rollback_makes_the_previous_version_current(
    dask_client: object, redis_url: str, r: redis.Redis, ns: str
) -> None:
    lists, expected = make_lists(n_users=100, npartitions=2)
    first = publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)
    second = publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)

    assert rollback(redis_url, ns) == first.version
    assert current_version(redis_url, ns) == first.version
    assert list_versions(redis_url, ns) == [first.version]
    assert user_keys(r, ns, second.version) == []
    assert len(user_keys(r, ns, first.version)) == len(expected)
    with pytest.raises(PublishError, match="no earlier kept version"):
        rollback(redis_url, ns)
    assert current_version(redis_url, ns) == first.version


def test_explicit_version_ttl_and_refusals(
    dask_client: object, redis_url: str, r: redis.Redis, ns: str
) -> None:
    lists, expected = make_lists(n_users=50, npartitions=2)
    report = publish_lists(
        lists, redis_url, ns, fallback_items=FALLBACK, version="nightly-1", ttl_seconds=3600
    )
    assert report.version == "nightly-1"
    ttl = r.ttl(Keys(ns).user("nightly-1", next(iter(expected))))
    assert 3500 < ttl <= 3600
    with pytest.raises(PublishError, match="already exists"):
        publish_lists(lists, redis_url, ns, fallback_items=FALLBACK, version="nightly-1")
    with pytest.raises(ConfigError, match="namespace"):
        publish_lists(lists, redis_url, "bad{ns}", fallback_items=FALLBACK)
    with pytest.raises(DataError, match="missing column"):
        publish_lists(lists.drop(columns="score"), redis_url, ns, fallback_items=FALLBACK)
    with NamespaceLock(r, Keys(ns).lock), pytest.raises(PublishError, match="holds"):
        publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)
    assert current_version(redis_url, ns) == "nightly-1"


def test_unreachable_redis_fails_fast(closed_url: str) -> None:
    lists, _ = make_lists(n_users=10, npartitions=1)
    with pytest.raises(StoreUnavailableError, match="REDIS_URL"):
        publish_lists(lists, closed_url, "anything", fallback_items=FALLBACK)
    with pytest.raises(StoreUnavailableError):
        current_version(closed_url, "anything")


@pytest.fixture
def closed_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


def test_round_significant_keeps_six_digits() -> None:
    values = np.array([0.123456789, 1234567.8, -3.14159265, 1.23456789e-30, 0.0, 7.0])
    rounded = round_significant(values).tolist()
    assert [repr(v) for v in rounded] == [
        "0.123457",
        "1234570.0",
        "-3.14159",
        "1.23457e-30",
        "0.0",
        "7.0",
    ]
