"""The HTTP lookup API: a small Starlette app over ``ListStore``.

``GET /v1/users/{user_id}/recommendations?k=10`` returns
``{"user_id", "items", "scores", "version", "fallback"}``; ``/healthz`` says the process is up and
``/readyz`` that Redis answers and a version is current. Errors are JSON ``{"error", "detail"}``:
422 for a bad ``k``, 503 while Redis is down or nothing is published (the pool reconnects by
itself). The hot path is one pipelined Redis round trip, ``json.loads`` and ``json.dumps``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.publish.embedded import mask_url
from pipeline.serve.store import ListStore, NoCurrentVersion

log = logging.getLogger("recpipe.serve")

MAX_K = 1000
_ENV_URL = "RECPIPE_SERVE_REDIS_URL"
_ENV_NAMESPACE = "RECPIPE_SERVE_NAMESPACE"


def _json(status: int, body: dict[str, Any]) -> Response:
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Response(text.encode(), status_code=status, media_type="application/json")


def _error(status: int, error: str, detail: str) -> Response:
    return _json(status, {"error": error, "detail": detail})


def _parse_k(raw: str | None) -> int | None:
    """``k`` from the query string, or None when it is not an integer in 1..MAX_K."""
    if raw is None:
        return 10
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4:
        return None
    k = int(raw)
    return k if 1 <= k <= MAX_K else None


class _Api:
    """Request handlers bound to one store (and a flag so an outage is logged once)."""

    def __init__(self, store: ListStore) -> None:
        self.store = store
        self.where = f"Redis at {mask_url(store.redis_url)}, namespace {store.keys.namespace!r}"
        self._down = False

    def _unavailable(self, exc: BaseException) -> Response:
        if not self._down:
            log.warning("%s is unavailable: %s", self.where, exc)
            self._down = True
        return _error(503, "store_unavailable", f"{self.where} is unavailable: {exc}")

    def _no_version(self) -> Response:
        return _error(
            503, "no_current_version", f"{self.where} has no current version; publish lists first"
        )

    async def recommendations(self, request: Request) -> Response:
        raw_k = request.query_params.get("k")
        k = _parse_k(raw_k)
        if k is None:
            return _error(
                422, "invalid_parameter", f"k must be an integer from 1 to {MAX_K}, got {raw_k!r}"
            )
        user_id = request.path_params["user_id"]
        if not user_id:
            return _error(422, "invalid_parameter", "user_id is empty")
        try:
            found = await self.store.lookup(user_id)
        except NoCurrentVersion:
            return self._no_version()
        except (RedisError, OSError) as exc:
            return self._unavailable(exc)
        if self._down:
            log.warning("%s is reachable again", self.where)
            self._down = False
        return _json(
            200,
            {
                "user_id": found.user_id,
                "items": found.items[:k],
                "scores": found.scores[:k],
                "version": found.version,
                "fallback": found.fallback,
            },
        )

    async def healthz(self, request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        try:
            await self.store.ping()
            version = await self.store.current()
        except (RedisError, OSError) as exc:
            return self._unavailable(exc)
        if version is None:
            return self._no_version()
        return _json(200, {"status": "ready", "version": version})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, "http_error", exc.detail)


def create_app(
    redis_url: str, namespace: str, *, max_connections: int = 64, timeout: float = 1.0
) -> Starlette:
    """The lookup app for ``namespace`` in Redis at ``redis_url`` (``timeout`` per Redis call)."""
    store = ListStore(redis_url, namespace, max_connections=max_connections, timeout=timeout)
    api = _Api(store)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    routes = [
        Route("/v1/users/{user_id:path}/recommendations", api.recommendations, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    app.state.store = store
    return app


def app_from_env() -> Starlette:
    """App factory for uvicorn worker processes (``serve(workers > 1)`` passes settings by env)."""
    return create_app(os.environ[_ENV_URL], os.environ[_ENV_NAMESPACE])


def serve(
    redis_url: str,
    namespace: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
) -> None:
    """Run the API on uvicorn until interrupted (log level warning)."""
    import uvicorn

    if workers <= 1:
        uvicorn.run(create_app(redis_url, namespace), host=host, port=port, log_level="warning")
        return
    os.environ[_ENV_URL] = redis_url
    os.environ[_ENV_NAMESPACE] = namespace
    uvicorn.run(
        "pipeline.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )
