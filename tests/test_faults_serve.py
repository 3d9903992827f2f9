"""Abuse of the lookup API: oversized batch bodies are refused before they are read, and lists
stay whole while versions flip under concurrent requests."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_serve import FALLBACK, ServerThread, _lists

from pipeline.publish import publish_lists, rollback
from pipeline.serve import create_app
from pipeline.serve.settings import Settings

MAX_BATCH = 50
LIMIT = 1024 + 520 * MAX_BATCH  # room for MAX_BATCH ids of the longest allowed length


@pytest.fixture(scope="module")
def namespace(dask_client: object, redis_url: str) -> str:
    ns = f"t{uuid.uuid4().hex[:12]}"
    lists, _ = _lists(list(range(5)), {})
    publish_lists(lists, redis_url, ns, fallback_items=FALLBACK)
    return ns


@pytest.fixture(scope="module")
def api(namespace: str, redis_url: str) -> Iterator[httpx.Client]:
    with ServerThread(create_app(redis_url, namespace, max_batch=MAX_BATCH)) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_the_body_limit_follows_the_batch_size() -> None:
    assert Settings("redis://h:1/0", "ns", max_batch=MAX_BATCH).body_limit == LIMIT
    assert Settings.from_env({"RECPIPE_REDIS_URL": "redis://h:1/0", "RECPIPE_NAMESPACE": "n",
                              "RECPIPE_MAX_BODY_BYTES": "4096"}).body_limit == 4096


def test_a_body_over_the_limit_is_413_from_its_content_length(api: httpx.Client) -> None:
    body = b'{"user_ids": [' + b",".join([b"1"] * (LIMIT // 2)) + b"]}"
    response = api.post("/v1/recommendations", content=body,
                        headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "body_too_large"
    # the largest batch of long ids still fits
    ids = [f"u{'x' * 500}{i}" for i in range(MAX_BATCH)]
    assert api.post("/v1/recommendations", json={"user_ids": ids}).status_code == 200


def test_a_chunked_body_is_cut_off_at_the_limit(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"user_ids": [1'
        for _ in range(LIMIT // 1000 + 2):
            yield b",1" * 500

    response = api.post("/v1/recommendations", content=chunks(),
                        headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text


def test_a_50_mb_declared_body_is_never_read(namespace: str, redis_url: str) -> None:
    app = create_app(redis_url, namespace, max_batch=MAX_BATCH)
    received, sent = [], []

    async def receive() -> dict[str, Any]:  # 3 MB at most, should a reader not stop
        received.append(1)
        return {"type": "http.request", "body": b"x" * 65536, "more_body": len(received) < 48}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/recommendations",
             "raw_path": b"/v1/recommendations", "query_string": b"", "root_path": "",
             "headers": [(b"content-length", str(50 * 2**20).encode()),
                         (b"content-type", b"application/json")],
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413 and not received
    # without a Content-Length the stream is read only up to the limit
    scope["headers"] = [(b"content-type", b"application/json")]
    sent.clear()
    received.clear()
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413 and len(received) <= LIMIT // 65536 + 2


def test_the_limit_is_in_the_openapi_document(api: httpx.Client) -> None:
    post = api.get("/openapi.json").json()["paths"]["/v1/recommendations"]["post"]
    assert "413" in post["responses"]
    assert str(LIMIT) in post["requestBody"]["description"]


def test_flips_under_concurrent_load_serve_whole_lists(dask_client: object,
                                                       redis_url: str) -> None:
    """Readers hammer one user while versions are published and rolled back: every answer is
    200 and exactly one version's list, never a mix or a missing one."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    users = list(range(8))
    versions: dict[str, dict] = {}

    def publish(length: int) -> str:
        lists, expected = _lists(users, dict.fromkeys(users, length))
        version = publish_lists(lists, redis_url, ns, fallback_items=FALLBACK,
                                keep_versions=5).version
        versions[version] = expected
        return version

    publish(3)
    stop, bad, seen = threading.Event(), [], []
    with ServerThread(create_app(redis_url, ns)) as url:

        def read() -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                while not stop.is_set():
                    batch = c.post("/v1/recommendations", json={"user_ids": users, "k": 50})
                    if batch.status_code != 200:
                        bad.append(batch.text)
                        continue
                    body = batch.json()  # checked once every version is known
                    seen.append((body["version"], [r["items"] for r in body["results"]]))

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        try:
            for length in (5, 7, 9):
                publish(length)
            rollback(redis_url, ns)
        finally:
            stop.set()
            for t in readers:
                t.join()
    assert not bad, bad[:3]
    for version, got in seen:
        assert got == [versions[version][u][0] for u in users], version
    assert len({version for version, _ in seen}) >= 2
