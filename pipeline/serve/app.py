"""The HTTP lookup API: a bare ASGI fast path for the hot route, Starlette for everything else.

Endpoints (``/openapi.json`` describes them, ``/docs`` shows them):

- ``GET /v1/users/{user_id}/recommendations?k=10``: ``{"user_id", "items", "scores", "version",
  "fallback"}``; ``k`` in 1..1000, a larger ``k`` than stored returns the whole list;
- ``POST /v1/recommendations`` with ``{"user_ids": [...], "k": 10}``: ``{"version", "k",
  "results": [{"user_id", "items", "scores", "fallback"}, ...]}``, one Redis round trip; a body
  over the limit (``pipeline.serve.settings``) is answered 413 before it is parsed;
- ``/healthz`` (the process is up), ``/readyz`` (Redis answers and a version is current).

Why a fast path: with the API and its clients sharing two cores, per-request CPU decides the
throughput, and Starlette's routing, request and response objects are Python work the hot route does
not need. ``LookupApp`` answers ``GET .../recommendations`` itself (the path is matched with two
string tests) and hands every other request, and the lifespan, to the Starlette app, which also
serves that route for HEAD. Settings come from the environment (``pipeline.serve.settings``).
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pipeline.serve.handlers import Answer, Lookups, error
from pipeline.serve.openapi import DOCS_HTML, openapi_document
from pipeline.serve.settings import ENV_NAMESPACE, ENV_URL, Settings
from pipeline.serve.store import ListStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PREFIX, _SUFFIX = "/v1/users/", "/recommendations"
_MIN_PATH = len(_PREFIX) + len(_SUFFIX)
_JSON = b"application/json"


def _raw_k(query: bytes) -> str | None:
    """The last ``k`` of a query string, as Starlette's ``query_params.get`` would return it."""
    if not query:
        return None
    if query.startswith(b"k=") and not any(c in query for c in b"&%+;"):
        return query[2:].decode("latin-1")  # the common case, without a parser
    values = [v for name, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
              if name == "k"]
    return values[-1] if values else None


async def capped_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes: from the
    Content-Length before reading anything, else (chunked) while it streams in."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _respond(answer: Answer) -> Response:
    return Response(answer[1], status_code=answer[0], media_type="application/json")


class LookupApp:
    """The ASGI app ``create_app`` returns; ``.starlette`` serves all but the hot route."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ListStore(
            settings.redis_url, settings.namespace,
            pool_size=settings.pool_size, timeout=settings.timeout,
        )
        self.lookups = Lookups(self.store, settings.max_batch)
        self.starlette = self._starlette()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(_PREFIX) and path.endswith(_SUFFIX) and len(path) >= _MIN_PATH:
                user_id = path[len(_PREFIX) : -len(_SUFFIX)]
                status, body = await self.lookups.one(user_id, _raw_k(scope["query_string"]))
                await send({
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-length", b"%d" % len(body)), (b"content-type", _JSON)],
                })
                await send({"type": "http.response.body", "body": body})
                return
        await self.starlette(scope, receive, send)

    def _starlette(self) -> Starlette:
        lookups, store = self.lookups, self.store
        limit = self.settings.body_limit
        document = json.dumps(openapi_document(self.settings.max_batch, limit)).encode()

        async def one(request: Request) -> Response:  # HEAD (GET takes the fast path)
            user_id = request.path_params["user_id"]
            return _respond(await lookups.one(user_id, request.query_params.get("k")))

        async def many(request: Request) -> Response:
            body = await capped_body(request, limit)
            return _respond(lookups.too_large(limit) if body is None else await lookups.many(body))

        async def healthz(request: Request) -> Response:
            return _respond((200, b'{"status":"ok"}'))

        async def readyz(request: Request) -> Response:
            return _respond(await lookups.ready())

        async def openapi(request: Request) -> Response:
            return Response(document, media_type="application/json")

        async def docs(request: Request) -> Response:
            return HTMLResponse(DOCS_HTML)

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            return _respond(error(exc.status_code, "http_error", exc.detail))

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            # Start-up objects (modules, app, models) live for the whole process: move them out
            # of the collector's generations so full collections stay short during traffic.
            gc.collect()
            gc.freeze()
            yield
            store.close()

        routes = [
            Route(f"{_PREFIX}{{user_id:path}}{_SUFFIX}", one, methods=["GET"]),
            Route("/v1/recommendations", many, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
            Route("/docs", docs, methods=["GET"], include_in_schema=False),
        ]
        return Starlette(
            routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
        )


def create_app(
    redis_url: str,
    namespace: str,
    *,
    pool_size: int = 2,
    timeout: float = 1.0,
    max_batch: int = 1000,
    max_body_bytes: int | None = None,
) -> LookupApp:
    """The lookup app for ``namespace`` in Redis at ``redis_url`` (``timeout`` per Redis call)."""
    return LookupApp(Settings(redis_url, namespace, pool_size, timeout, max_batch,
                              max_body_bytes))


def app_from_env() -> LookupApp:
    """App factory for uvicorn worker processes (settings: ``pipeline.serve.settings``)."""
    return LookupApp(Settings.from_env())


def serve(
    redis_url: str,
    namespace: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
) -> None:
    """Run the API on uvicorn (uvloop, httptools, no access log) until interrupted.

    The other settings (pool size, timeout, batch size) come from the environment.
    """
    import uvicorn

    os.environ[ENV_URL] = redis_url
    os.environ[ENV_NAMESPACE] = namespace
    uvicorn.run(
        "pipeline.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=max(workers, 1),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
