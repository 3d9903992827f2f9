"""The lookup API over real HTTP (uvicorn on a socket) and a real Redis filled by a real publish."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import dask.dataframe as dd
import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

from pipeline.publish import EmbeddedRedis, publish_lists
from pipeline.publish.keys import round_significant
from pipeline.serve import LookupApp, RecommendationError, RecpipeClient, create_app

FALLBACK = [7001, 7002, 7003, 7004]
LENGTHS = {0: 20, 1: 5, 2: 1}  # user id -> list length; users 3.. have 20


def _lists(user_ids: list[object], lengths: dict[object, int]) -> tuple[dd.DataFrame, dict]:
    rows, expected = [], {}
    rng = np.random.default_rng(3)
    for user in user_ids:
        n = lengths.get(user, 20)
        items = rng.integers(0, 10_000, n).tolist()
        scores = np.sort(rng.random(n))[::-1]
        expected[user] = (items, round_significant(scores).tolist())
        pairs = zip(items, scores, strict=True)
        rows += [(user, rank + 1, item, s, "t") for rank, (item, s) in enumerate(pairs)]
    frame = pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score", "source"])
    lists = dd.from_pandas(frame.set_index("user_id").sort_index(), npartitions=2).reset_index()
    return lists, expected


class ServerThread:
    """uvicorn serving ``app`` on a free port of 127.0.0.1, in a background thread."""

    def __init__(self, app: LookupApp) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def published(dask_client: object, redis_url: str) -> tuple[str, str, dict]:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    lists, expected = _lists(list(range(50)), LENGTHS)
    report = publish_lists(lists, redis_url, namespace, fallback_items=FALLBACK)
    return namespace, report.version, expected


@pytest.fixture(scope="module")
def base_url(published: tuple[str, str, dict], redis_url: str) -> Iterator[str]:
    with ServerThread(create_app(redis_url, published[0])) as url:
        yield url


def test_known_user_over_real_http(base_url: str, published: tuple[str, str, dict]) -> None:
    _, version, expected = published
    with RecpipeClient(base_url) as client:
        body = client.recommendations(0)
        assert body == {
            "user_id": 0,
            "items": expected[0][0][:10],
            "scores": expected[0][1][:10],
            "version": version,
            "fallback": False,
        }
        assert client.recommendations(0, k=3)["items"] == expected[0][0][:3]
        assert client.recommendations(1, k=1000)["items"] == expected[1][0]  # all 5 stored
        assert client.recommendations("007", k=20)["items"] == expected[7][0]  # int ids normalised
        many = client.recommendations_many([0, 999_999], k=2)
        assert [r["items"] for r in many["results"]] == [expected[0][0][:2], FALLBACK[:2]]
        assert client.ready()


def test_unknown_user_gets_the_fallback(base_url: str, published: tuple[str, str, dict]) -> None:
    _, version, _ = published
    with RecpipeClient(base_url) as client:
        body = client.recommendations(123456, k=2)
        assert body["items"] == FALLBACK[:2] and body["fallback"] is True
        assert body["version"] == version and body["scores"] == [0.0, 0.0]
        assert client.recommendations("not-a-number")["user_id"] == "not-a-number"


@pytest.mark.parametrize("k", ["0", "1001", "abc", "1.5", "-1", ""])
def test_bad_k_is_a_422_json_error(base_url: str, k: str) -> None:
    response = httpx.get(f"{base_url}/v1/users/0/recommendations", params={"k": k})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_parameter"
    assert "k must be an integer" in response.json()["detail"]


def test_health_and_readiness(base_url: str, published: tuple[str, str, dict]) -> None:
    assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base_url}/readyz").json() == {"status": "ready", "version": published[1]}
    missing = httpx.get(f"{base_url}/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "http_error"


def _asgi_get(app: LookupApp, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get(path)

    return asyncio.run(call())


def test_no_published_version_is_503(redis_url: str) -> None:
    app = create_app(redis_url, f"t{uuid.uuid4().hex[:12]}")
    response = _asgi_get(app, "/v1/users/1/recommendations")
    assert response.status_code == 503
    assert response.json()["error"] == "no_current_version"
    assert _asgi_get(app, "/readyz").status_code == 503


def test_unreachable_redis_is_503(redis_url: str) -> None:
    app = create_app(f"redis://:pw@127.0.0.1:{_closed_port()}/0", "anything")
    with ServerThread(app) as url, RecpipeClient(url) as client:
        started = time.monotonic()
        with pytest.raises(RecommendationError) as info:
            client.recommendations(1)
        assert info.value.status == 503 and info.value.error == "store_unavailable"
        assert time.monotonic() - started < 2
        assert "pw" not in str(info.value)
        assert httpx.get(f"{url}/readyz").status_code == 503
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert not client.ready()


def test_recovers_when_redis_comes_back_and_follows_the_pointer(dask_client: object) -> None:
    """Own server: stop it under a running app, start it again on the same port, publish."""
    users = ["alice", "team/7", "bob"]
    lists, expected = _lists(users, {})
    with EmbeddedRedis() as server:
        url, port = server.url, server.port
        assert port is not None
        publish_lists(lists, url, "live", fallback_items=["x"])
        with ServerThread(create_app(url, "live")) as api, RecpipeClient(api) as client:
            assert client.recommendations("team/7")["items"] == expected["team/7"][0][:10]
            server.stop()
            with pytest.raises(RecommendationError) as info:
                client.recommendations("alice")
            assert info.value.error == "store_unavailable"
            with EmbeddedRedis(port=port) as again:
                with pytest.raises(RecommendationError) as info:
                    client.recommendations("alice")
                assert info.value.error == "no_current_version"  # reconnected; store is empty
                second = publish_lists(lists, again.url, "live", fallback_items=["x"])
                body = client.recommendations("alice", k=3)
                assert body["version"] == second.version and not body["fallback"]
                assert body["items"] == expected["alice"][0][:3]
                assert client.recommendations("carol")["items"] == ["x"]
