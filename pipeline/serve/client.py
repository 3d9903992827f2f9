"""A small Python client for the lookup API (httpx, one connection pool per client)."""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from pipeline.errors import RecpipeError


class RecommendationError(RecpipeError):
    """The API answered with an error; ``status`` and ``error`` are its status code and code."""

    def __init__(self, message: str, status: int = 0, error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class RecpipeClient:
    """``RecpipeClient("http://127.0.0.1:8000").recommendations(42, k=5)``."""

    def __init__(self, base_url: str, timeout: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def recommendations(self, user_id: int | str, k: int = 10) -> dict[str, Any]:
        """``{"user_id", "items", "scores", "version", "fallback"}`` for ``user_id``."""
        path = f"/v1/users/{quote(str(user_id), safe='')}/recommendations"
        return self._request("GET", path, params={"k": k})

    def recommendations_many(self, user_ids: list[int | str], k: int = 10) -> dict[str, Any]:
        """``{"version", "k", "results": [...]}``: many users in one request and Redis trip."""
        return self._request("POST", "/v1/recommendations", json={"user_ids": user_ids, "k": k})

    def ready(self) -> bool:
        """True when the API reaches Redis and a version is current."""
        try:
            self._request("GET", "/readyz")
        except RecommendationError:
            return False
        return True

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RecommendationError(
                f"cannot reach the recpipe API at {self.base_url}: {exc}; is `recpipe serve` up?"
            ) from exc
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {"error": "bad_response", "detail": response.text[:200]}
        if response.status_code != 200:
            raise RecommendationError(
                f"{self.base_url}{path} answered {response.status_code}: "
                f"{body.get('detail', body)}",
                status=response.status_code,
                error=str(body.get("error", "")),
            )
        return body

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RecpipeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
