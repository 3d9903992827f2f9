"""Async reads of published lists, one Redis round trip per lookup.

Why not a Lua script that follows the pointer: it would touch a key it was not given, which Redis
Cluster forbids (the user keys live in other slots). Instead the store remembers the last version it
saw and pipelines ``GET current`` with ``GET`` of the user key under that version. When the
pointer has moved (a publish or rollback), the reply says so and one more ``GET`` follows. The
fallback list and id type of a version never change, so they are read once per version.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from pipeline.publish.keys import Keys

_INT = re.compile(r"^-?[0-9]{1,19}$")


class NoCurrentVersion(Exception):
    """The namespace has no published version yet."""


@dataclass(frozen=True)
class VersionInfo:
    """What never changes within a version: its fallback list and the type of its user ids."""

    fallback: dict[str, Any]
    int_user_ids: bool


@dataclass(frozen=True)
class Lookup:
    user_id: str | int
    version: str
    items: list[Any]
    scores: list[float]
    fallback: bool


class ListStore:
    """Reads one namespace through a bounded ``redis.asyncio`` connection pool."""

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        *,
        max_connections: int = 64,
        timeout: float = 1.0,
    ) -> None:
        self.keys = Keys(namespace)
        self.redis_url = redis_url
        self._options = {
            "max_connections": max_connections,
            "timeout": timeout,  # waiting for a free connection
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # Fail fast while Redis is down (answer 503); the pool reconnects once it is back.
            "retry": Retry(NoBackoff(), 1),
        }
        self._redis: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._version: str | None = None
        self._infos: dict[str, VersionInfo] = {}

    @property
    def redis(self) -> aioredis.Redis:
        """The client of the running event loop (connections cannot cross loops, e.g. in tests)."""
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:
            pool = aioredis.BlockingConnectionPool.from_url(self.redis_url, **self._options)
            self._redis, self._loop = aioredis.Redis(connection_pool=pool), loop
        return self._redis

    async def close(self) -> None:
        if self._redis is not None and self._loop is asyncio.get_running_loop():
            await self._redis.aclose()
        self._redis = self._loop = None

    async def current(self) -> str | None:
        value = await self.redis.get(self.keys.current)
        return value.decode() if value is not None else None

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def lookup(self, user_id: str) -> Lookup:
        """The list of ``user_id`` (a path string) under the current version, or the fallback."""
        version = self._version or await self.current()
        if version is None:
            raise NoCurrentVersion
        info = await self._info(version)
        key_id = _normalise(user_id, info)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.current)
            pipe.get(self.keys.user(version, key_id))
            current, raw = await pipe.execute()
        if current is None:
            self._version = None
            raise NoCurrentVersion
        if current.decode() != version:  # the pointer moved since the last request
            version = self._version = current.decode()
            info = await self._info(version)
            key_id = _normalise(user_id, info)
            raw = await self.redis.get(self.keys.user(version, key_id))
        self._version = version
        if raw is None:
            fb = info.fallback
            return Lookup(key_id, version, fb["items"], fb["scores"], True)
        value = json.loads(raw)
        return Lookup(key_id, version, value["items"], value["scores"], False)

    async def _info(self, version: str) -> VersionInfo:
        info = self._infos.get(version)
        if info is not None:
            return info
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.fallback(version))
            pipe.hget(self.keys.meta(version), "user_id_type")
            raw_fallback, id_type = await pipe.execute()
        fallback = json.loads(raw_fallback) if raw_fallback else {"items": [], "scores": []}
        info = VersionInfo(fallback, id_type == b"int")
        if raw_fallback is not None:  # cache only complete versions
            if len(self._infos) >= 8:
                self._infos.pop(next(iter(self._infos)))
            self._infos[version] = info
        return info


def _normalise(user_id: str, info: VersionInfo) -> str | int:
    """Int ids are stored as ``str(int)``: map ``"007"`` to 7 so it finds the key."""
    if info.int_user_ids and _INT.match(user_id):
        return int(user_id)
    return user_id
