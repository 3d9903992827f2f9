"""What each endpoint answers, as ``(status, JSON bytes)``, independent of the web framework.

Keeping the handlers framework-free lets the bare ASGI fast path (``pipeline.serve.app``) and the
Starlette routes share them, so both answer byte for byte the same. Errors are JSON
``{"error", "detail"}``: 413 for a body over the size limit, 422 for a bad ``k``, user id or
body, 503 while Redis is down or nothing
is published (the connections reconnect by themselves).
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from pipeline.publish.embedded import mask_url
from pipeline.serve import render
from pipeline.serve.openapi import MAX_K, BatchRequest
from pipeline.serve.store import ListStore, NoCurrentVersion, StoreError

log = logging.getLogger("recpipe.serve")

Answer = tuple[int, bytes]


def error(status: int, code: str, detail: str) -> Answer:
    return status, render.dumps({"error": code, "detail": detail})


def parse_k(raw: str | None) -> int | None:
    """``k`` from the query string (10 when absent), or None when not an integer in 1..MAX_K."""
    if raw is None:
        return 10
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4:
        return None
    k = int(raw)
    return k if 1 <= k <= MAX_K else None


class Lookups:
    """Request handlers bound to one store (and a flag so an outage is logged once)."""

    def __init__(self, store: ListStore, max_batch: int) -> None:
        self.store = store
        self.max_batch = max_batch
        self.where = f"Redis at {mask_url(store.redis_url)}, namespace {store.keys.namespace!r}"
        self._down = False

    def _unavailable(self, exc: BaseException) -> Answer:
        if not self._down:
            log.warning("%s is unavailable: %s", self.where, exc)
            self._down = True
        self.store.forget()
        return error(503, "store_unavailable", f"{self.where} is unavailable: {exc}")

    def _no_version(self) -> Answer:
        return error(
            503, "no_current_version", f"{self.where} has no current version; publish lists first"
        )

    def _reachable(self) -> None:
        if self._down:
            log.warning("%s is reachable again", self.where)
            self._down = False

    async def one(self, user_id: str, raw_k: str | None) -> Answer:
        """``GET /v1/users/{user_id}/recommendations?k=``."""
        k = parse_k(raw_k)
        if k is None:
            return error(
                422, "invalid_parameter", f"k must be an integer from 1 to {MAX_K}, got {raw_k!r}"
            )
        if not user_id:
            return error(422, "invalid_parameter", "user_id is empty")
        try:
            found = await self.store.lookup(user_id)
        except NoCurrentVersion:
            return self._no_version()
        except StoreError as exc:
            return self._unavailable(exc)
        if self._down:
            self._reachable()
        info = found.info
        return 200, render.one_user(found.key_id, found.raw, info.fallback, k, info.version)

    async def many(self, body: bytes) -> Answer:
        """``POST /v1/recommendations`` with ``{"user_ids": [...], "k": 10}``."""
        try:
            request = BatchRequest.model_validate_json(body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            expected = "expected {'user_ids': [...], 'k': 10}"
            return error(422, "invalid_body", f"{expected}: {problems}")
        if len(request.user_ids) > self.max_batch:
            return error(
                422, "invalid_body",
                f"at most {self.max_batch} user_ids per request, got {len(request.user_ids)}",
            )
        try:
            found = await self.store.lookup_many(list(request.user_ids))
        except NoCurrentVersion:
            return self._no_version()
        except StoreError as exc:
            return self._unavailable(exc)
        self._reachable()
        info = found[0].info
        pairs = [(f.key_id, f.raw) for f in found]
        return 200, render.many_users(pairs, info.fallback, request.k, info.version)

    def too_large(self, limit: int) -> Answer:
        """413 for a ``POST /v1/recommendations`` body over ``limit`` bytes (never parsed)."""
        return error(
            413, "body_too_large",
            f"the body is larger than {limit} bytes; send at most {self.max_batch} user_ids per "
            "request (split larger batches)",
        )

    async def ready(self) -> Answer:
        """``GET /readyz``: Redis answers and a version is current."""
        try:
            await self.store.ping()
            version = await self.store.current()
        except StoreError as exc:
            return self._unavailable(exc)
        if version is None:
            return self._no_version()
        self._reachable()
        return 200, render.dumps({"status": "ready", "version": version})
