"""The batch endpoint, OpenAPI, the fast path's exact JSON and version switches, on real HTTP and a
real Redis filled by real publishes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_serve import FALLBACK, LENGTHS, ServerThread, _lists

from pipeline.publish import publish_lists, rollback
from pipeline.serve import create_app


def _reference(user_id: object, items: list[Any], scores: list[float], version: str,
               fallback: bool) -> bytes:
    """The body the original handler built: ``json.dumps`` of the whole answer."""
    body = {"user_id": user_id, "items": items, "scores": scores, "version": version,
            "fallback": fallback}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def published(dask_client: object, redis_url: str) -> tuple[str, str, dict]:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    lists, expected = _lists(list(range(20)), LENGTHS)
    report = publish_lists(lists, redis_url, namespace, fallback_items=FALLBACK)
    return namespace, report.version, expected


@pytest.fixture(scope="module")
def api(published: tuple[str, str, dict], redis_url: str) -> Iterator[httpx.Client]:
    app = create_app(redis_url, published[0], max_batch=50)
    with ServerThread(app) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.mark.parametrize("k", [1, 3, 5, 10, 19, 20, 21, 1000])
def test_fast_path_bytes_equal_the_original_json(
    api: httpx.Client, published: tuple[str, str, dict], k: int
) -> None:
    _, version, expected = published
    for user in (0, 1, 2, 3):  # 20, 5, 1 and 20 items stored
        items, scores = expected[user]
        response = api.get(f"/v1/users/{user}/recommendations", params={"k": k})
        assert response.content == _reference(user, items[:k], scores[:k], version, False)
        assert response.headers["content-type"] == "application/json"
    response = api.get(f"/v1/users/999999/recommendations?k={k}")
    assert response.content == _reference(999999, FALLBACK[:k], [0.0] * min(k, 4), version, True)


def test_query_strings_parse_like_starlette(
    api: httpx.Client, published: tuple[str, str, dict]
) -> None:
    items = published[2][0][0]
    for query, n in [("", 10), ("?k=3&x=1", 3), ("?x=1&k=2", 2), ("?k=%34", 4), ("?k=1&k=5", 5)]:
        assert api.get(f"/v1/users/0/recommendations{query}").json()["items"] == items[:n]
    assert api.get("/v1/users//recommendations").status_code == 422
    assert api.head("/v1/users/0/recommendations").status_code == 200  # Starlette's route


def test_string_ids_and_items_take_the_parsing_path(
    dask_client: object, redis_url: str
) -> None:
    """Commas, quotes and non-ASCII in ids: the answer is still exactly the original JSON."""
    import dask.dataframe as dd
    import pandas as pd

    items = ['a,b', 'q"uote', "ünï", "x", "back\\slash"]
    frame = pd.DataFrame({"user_id": ["u/1"] * 5 + ["é"] * 5, "rank": [1, 2, 3, 4, 5] * 2,
                          "item_id": items * 2, "score": [0.5, 0.4, 0.3, 0.2, 0.1] * 2,
                          "source": "t"})
    namespace = f"t{uuid.uuid4().hex[:12]}"
    version = publish_lists(
        dd.from_pandas(frame, npartitions=1), redis_url, namespace, fallback_items=["fb,1"]
    ).version
    scores = [0.5, 0.4, 0.3, 0.2, 0.1]
    with ServerThread(create_app(redis_url, namespace)) as url:
        for user in ("u/1", "é"):
            for k in (2, 5, 10):
                got = httpx.get(f"{url}/v1/users/{user}/recommendations", params={"k": k})
                assert got.content == _reference(user, items[:k], scores[:k], version, False)
        got = httpx.get(f"{url}/v1/users/nobody/recommendations")
        assert got.content == _reference("nobody", ["fb,1"], [0.0], version, True)


def test_batch_known_and_unknown_users(api: httpx.Client, published: tuple[str, str, dict]) -> None:
    _, version, expected = published
    ids = [0, "1", 424242, "007", "not-a-number", 0]
    body = api.post("/v1/recommendations", json={"user_ids": ids, "k": 3}).json()
    assert body["version"] == version and body["k"] == 3
    assert [r["user_id"] for r in body["results"]] == [0, 1, 424242, 7, "not-a-number", 0]
    assert [r["fallback"] for r in body["results"]] == [False, False, True, False, True, False]
    assert body["results"][0]["items"] == expected[0][0][:3]
    assert body["results"][0]["scores"] == expected[0][1][:3]
    assert body["results"][1]["items"] == expected[1][0][:3]
    assert body["results"][2]["items"] == FALLBACK[:3]
    assert body["results"][3]["items"] == expected[7][0][:3]
    default_k = api.post("/v1/recommendations", json={"user_ids": [2, 3]}).json()
    assert [len(r["items"]) for r in default_k["results"]] == [1, 10]  # user 2 has 1 stored


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"user_ids": []}',
        b'{"user_ids": [1], "k": 0}',
        b'{"user_ids": [1], "k": 1001}',
        b'{"user_ids": [1], "k": "5"}',
        b'{"user_ids": [true]}',
        b'{"user_ids": [""]}',
        b'{"user_ids": [1.5]}',
        b'{"user_ids": [1], "extra": 1}',
        json.dumps({"user_ids": list(range(51))}).encode(),  # max_batch=50
    ],
)
def test_bad_batch_body_is_a_422_json_error(api: httpx.Client, body: bytes) -> None:
    response = api.post("/v1/recommendations", content=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_body"


def test_openapi_document_lists_the_routes(api: httpx.Client) -> None:
    document = api.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/v1/users/{user_id}/recommendations", "/v1/recommendations", "/healthz", "/readyz"
    }
    assert "post" in document["paths"]["/v1/recommendations"]
    assert {"BatchRequest", "BatchResponse", "Error"} <= set(document["components"]["schemas"])
    assert "swagger-ui" in api.get("/docs").text


def test_new_publish_and_rollback_are_seen_by_the_next_request(
    dask_client: object, redis_url: str
) -> None:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    first_lists, first = _lists(["a", "b"], {})
    v1 = publish_lists(first_lists, redis_url, namespace, fallback_items=["f1"]).version
    with ServerThread(create_app(redis_url, namespace)) as url, httpx.Client(base_url=url) as c:

        def get(user: str) -> dict[str, Any]:
            return c.get(f"/v1/users/{user}/recommendations", params={"k": 20}).json()

        assert get("a")["items"] == first["a"][0] and get("a")["version"] == v1
        second_lists, second = _lists(["a", "c"], {"a": 3})
        v2 = publish_lists(second_lists, redis_url, namespace, fallback_items=["f2"]).version
        assert (get("a")["version"], get("a")["items"]) == (v2, second["a"][0])
        assert get("b")["items"] == ["f2"] and get("b")["fallback"]  # not in v2
        batch = c.post("/v1/recommendations", json={"user_ids": ["c", "b"], "k": 20}).json()
        assert batch["version"] == v2 and [r["fallback"] for r in batch["results"]] == [
            False, True
        ]
        assert rollback(redis_url, namespace) == v1  # deletes v2's keys
        assert (get("a")["version"], get("a")["items"]) == (v1, first["a"][0])
        assert get("b")["items"] == first["b"][0] and not get("b")["fallback"]
        assert c.get("/readyz").json() == {"status": "ready", "version": v1}
