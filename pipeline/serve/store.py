"""Reads of published lists: one Redis round trip per lookup, always under the current version.

Why not a Lua script that follows the pointer: it would touch a key it was not given, which Redis
Cluster forbids (the user keys live in other slots). Instead the store remembers the last version it
saw and pipelines ``GET current`` with the user ``GET`` (or many of them) under that version. When
the pointer has moved (a publish or rollback), the reply says so and one more round trip follows.
So a new publish or a rollback is seen by the very next request, with no cache to expire, and a
rolled-back version's deleted keys are never read as "unknown user".

Values are returned as the raw bytes Redis holds; ``pipeline.serve.render`` turns them into JSON
responses without parsing them when it can. The fallback list and id type of a version never
change, so they are read once per version.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from pipeline.publish.keys import Keys
from pipeline.serve.resp import RedisReplyError, RedisUnavailable, RespPool, pack

_INT = re.compile(r"^-?[0-9]{1,19}$")
_EMPTY_LIST = b'{"items":[],"scores":[]}'
StoreError = (RedisUnavailable, RedisReplyError)


class NoCurrentVersion(Exception):
    """The namespace has no published version yet."""


@dataclass(frozen=True)
class VersionInfo:
    """What never changes within a version: its fallback list, id type and user key prefix."""

    version: str
    fallback: bytes
    int_user_ids: bool
    prefix: bytes

    def key_id(self, user_id: str | int) -> str | int:
        """Int ids are stored as ``str(int)``: map ``"007"`` to 7 so it finds the key."""
        if self.int_user_ids and isinstance(user_id, str) and _INT.match(user_id):
            return int(user_id)
        if not self.int_user_ids and isinstance(user_id, int):
            return str(user_id)
        return user_id

    def get(self, key_id: str | int) -> bytes:
        """The packed ``GET`` of ``key_id``'s list (hand-packed: this runs per request)."""
        key = self.prefix + str(key_id).encode()
        return b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(key), key)


@dataclass(frozen=True)
class Found:
    """One user's stored value (``None``: unknown user, serve ``info.fallback``)."""

    key_id: str | int
    raw: bytes | None
    info: VersionInfo


class ListStore:
    """Reads one namespace through a small pool of multiplexed Redis connections."""

    def __init__(
        self, redis_url: str, namespace: str, *, pool_size: int = 2, timeout: float = 1.0
    ) -> None:
        self.keys = Keys(namespace)
        self.redis_url = redis_url
        self._pool_size, self._timeout = pool_size, timeout
        self._pool: RespPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._get_current = pack(("GET", self.keys.current))
        self._version: str | None = None
        self._infos: dict[str, VersionInfo] = {}

    @property
    def pool(self) -> RespPool:
        """The pool of the running event loop (connections cannot cross loops, e.g. in tests)."""
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            self._pool, self._loop = RespPool(
                self.redis_url, pool_size=self._pool_size, timeout=self._timeout
            ), loop
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._pool = self._loop = None

    def forget(self) -> None:
        """Drop cached version facts (after an outage Redis may hold different data)."""
        self._version = None
        self._infos.clear()

    async def current(self) -> str | None:
        (value,) = await self.pool.execute_packed(self._get_current, 1)
        return value.decode() if value is not None else None

    async def ping(self) -> bool:
        (reply,) = await self.pool.execute(("PING",))
        return bool(reply == b"PONG")

    async def lookup(self, user_id: str) -> Found:
        """The list of ``user_id`` (a path string) under the current version, or a miss."""
        info = await self._guess()
        key_id = info.key_id(user_id)
        current, raw = await self.pool.execute_packed(self._get_current + info.get(key_id), 2)
        if current is None or current.decode() != info.version:  # the pointer moved
            info = await self._moved(current)
            key_id = info.key_id(user_id)
            (raw,) = await self.pool.execute_packed(info.get(key_id), 1)
        return Found(key_id, raw, info)

    async def lookup_many(self, user_ids: list[str | int]) -> list[Found]:
        """Like ``lookup`` for many users, all read in one pipelined round trip."""
        info = await self._guess()
        key_ids = [info.key_id(u) for u in user_ids]
        packed = self._get_current + b"".join(info.get(k) for k in key_ids)
        current, *raws = await self.pool.execute_packed(packed, len(key_ids) + 1)
        if current is None or current.decode() != info.version:
            info = await self._moved(current)
            key_ids = [info.key_id(u) for u in user_ids]
            packed = b"".join(info.get(k) for k in key_ids)
            raws = await self.pool.execute_packed(packed, len(key_ids))
        return [Found(k, raw, info) for k, raw in zip(key_ids, raws, strict=True)]

    async def _guess(self) -> VersionInfo:
        """The version seen last (checked by the caller in the same round trip), else current."""
        version = self._version
        if version is None:
            version = await self.current()
            if version is None:
                raise NoCurrentVersion
            self._version = version
        return self._infos.get(version) or await self._info(version)

    async def _moved(self, current: bytes | None) -> VersionInfo:
        if current is None:
            self._version = None
            raise NoCurrentVersion
        self._version = current.decode()
        return await self._info(self._version)

    async def _info(self, version: str) -> VersionInfo:
        info = self._infos.get(version)
        if info is not None:
            return info
        raw_fallback, id_type = await self.pool.execute(
            ("GET", self.keys.fallback(version)),
            ("HGET", self.keys.meta(version), "user_id_type"),
        )
        info = VersionInfo(
            version=version,
            fallback=raw_fallback or _EMPTY_LIST,
            int_user_ids=id_type == b"int",
            prefix=self.keys.user_prefix(version).encode(),
        )
        if raw_fallback is not None:  # cache only complete versions
            if len(self._infos) >= 8:
                self._infos.pop(next(iter(self._infos)))
            self._infos[version] = info
        return info
