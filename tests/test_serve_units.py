"""Pieces of the lookup API without HTTP: rendering, settings, and the Redis client's timeouts."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from pipeline.errors import ConfigError
from pipeline.publish.keys import encode
from pipeline.serve import render
from pipeline.serve.resp import RedisUnavailable, RespPool
from pipeline.serve.settings import Settings

VALUES = [
    ([], []),
    ([1], [0.5]),
    ([3, -2, 10**15, 7], [1e-05, 0.000123457, -0.0, 2.5e20]),
    (list(range(30)), [1.0 / (i + 1) for i in range(30)]),
    (["a,b", 'q"', "x\\y", "z"], [0.4, 0.3, 0.2, 0.1]),
    (["ünï", "ok"], [0.2, 0.1]),
]


@pytest.mark.parametrize(("items", "scores"), VALUES)
@pytest.mark.parametrize("k", [1, 2, 4, 29, 30, 1000])
def test_list_fields_equal_parse_and_dump(items: list, scores: list, k: int) -> None:
    raw = encode(items, scores).encode()
    want = json.dumps({"items": items[:k], "scores": scores[:k]}, separators=(",", ":"),
                      ensure_ascii=False).encode()[1:-1]
    assert render.list_fields(raw, k) == want


def test_settings_from_env() -> None:
    env = {"REDIS_URL": "redis://h:1/0", "RECPIPE_NAMESPACE": "ns",
           "RECPIPE_REDIS_POOL_SIZE": "3", "RECPIPE_REDIS_TIMEOUT": "0.5"}
    assert Settings.from_env(env) == Settings("redis://h:1/0", "ns", 3, 0.5, 1000)
    assert Settings.from_env({**env, "RECPIPE_REDIS_URL": "redis://o:2/0"}).redis_url == (
        "redis://o:2/0"
    )
    with pytest.raises(ConfigError, match="RECPIPE_NAMESPACE"):
        Settings.from_env({"REDIS_URL": "redis://h:1/0"})
    with pytest.raises(ConfigError, match="RECPIPE_REDIS_TIMEOUT must be a float"):
        Settings.from_env({**env, "RECPIPE_REDIS_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="RECPIPE_REDIS_POOL_SIZE"):
        Settings.from_env({**env, "RECPIPE_REDIS_POOL_SIZE": "0"})


def test_a_silent_server_times_out_every_waiting_request() -> None:
    """A Redis that accepts but never answers (hung, paused) fails requests after the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]

        async def main() -> list[BaseException | list]:
            pool = RespPool(f"redis://127.0.0.1:{port}/0", pool_size=1, timeout=0.3)
            try:
                return await asyncio.gather(
                    *(pool.execute(("GET", "k")) for _ in range(5)), return_exceptions=True
                )
            finally:
                pool.close()

        started = time.monotonic()
        results = asyncio.run(main())
        assert time.monotonic() - started < 1.5
        assert all(isinstance(r, RedisUnavailable) for r in results), results


def test_pool_talks_to_real_redis(redis_url: str) -> None:
    async def main() -> list:
        pool = RespPool(redis_url, pool_size=2)
        try:
            key = "recpipe-serve-test:resp"
            await pool.execute(("SET", key, b"v\r\nx"), ("EXPIRE", key, 60))
            return await asyncio.gather(*(pool.execute(("GET", key), ("PING",)) for _ in range(50)))
        finally:
            pool.close()

    assert asyncio.run(main()) == [[b"v\r\nx", b"PONG"]] * 50
