"""The embedded valkey server: it answers, it dies with its parent, and failures are explained."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
import redis

from pipeline.errors import StoreUnavailableError
from pipeline.publish.embedded import EmbeddedRedis, EmbeddedRedisError, mask_url, redis_connection


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5, retry=None).ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False


def test_server_answers_and_stops() -> None:
    with EmbeddedRedis() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis_connection(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        port = server.port
        client.close()
    assert not _answers(port)


def test_server_dies_when_its_parent_is_killed() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from pipeline.publish.embedded import EmbeddedRedis\n"
            "server = EmbeddedRedis().start()\n"
            "print(server.port, flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        assert _answers(port)
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        deadline = time.monotonic() + 5
        while _answers(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _answers(port), "the server outlived its SIGKILLed parent"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_failed_start_shows_the_server_log() -> None:
    with EmbeddedRedis() as first:
        with pytest.raises(EmbeddedRedisError, match="log tail") as info:
            EmbeddedRedis(port=first.port).start()
        assert "already in use" in str(info.value).lower()


def test_unreachable_redis_names_url_and_fix_without_password() -> None:
    url = f"redis://:s3cret@127.0.0.1:{_closed_port()}/0"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        redis_connection(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert mask_url(url) in message
    assert "REDIS_URL" in message
    assert time.monotonic() - started < 3
