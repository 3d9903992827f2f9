"""Settings of the lookup API, read from environment variables.

Every uvicorn worker process builds its app from the environment, so this is the one place the
variables are named:

===============================  ============  ==================================================
variable                         default       meaning
===============================  ============  ==================================================
``RECPIPE_REDIS_URL``            (required)    Redis to read (``redis://``, ``rediss://`` or
                                               ``unix://``); ``REDIS_URL`` is used when unset
``RECPIPE_NAMESPACE``            (required)    the workflow's publish namespace
``RECPIPE_REDIS_POOL_SIZE``      ``2``         Redis connections per worker process; requests are
                                               pipelined over them, so 1-4 is plenty
``RECPIPE_REDIS_TIMEOUT``        ``1.0``       seconds a Redis connect or reply may take before
                                               the request answers 503
``RECPIPE_MAX_BATCH``            ``1000``      most user ids in one ``POST /v1/recommendations``
``RECPIPE_MAX_BODY_BYTES``       (derived)     largest ``POST`` body, refused with 413 before it
                                               is parsed; default: room for ``RECPIPE_MAX_BATCH``
                                               ids of the longest allowed length
===============================  ============  ==================================================

``recpipe serve`` (``pipeline.serve.serve``) sets the first two from its arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from pipeline.errors import ConfigError

ENV_URL = "RECPIPE_REDIS_URL"
ENV_NAMESPACE = "RECPIPE_NAMESPACE"
ENV_POOL_SIZE = "RECPIPE_REDIS_POOL_SIZE"
ENV_TIMEOUT = "RECPIPE_REDIS_TIMEOUT"
ENV_MAX_BATCH = "RECPIPE_MAX_BATCH"
ENV_MAX_BODY = "RECPIPE_MAX_BODY_BYTES"
#: bytes one id may take in a batch body: the longest string id (512) quoted, plus a separator
_BYTES_PER_ID = 520
_BODY_OVERHEAD = 1024  # braces, key names, k and whitespace
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class Settings:
    redis_url: str
    namespace: str
    pool_size: int = 2
    timeout: float = 1.0
    max_batch: int = 1000
    max_body_bytes: int | None = None

    @property
    def body_limit(self) -> int:
        """Largest batch body accepted: the setting, else what ``max_batch`` ids can need."""
        return self.max_body_bytes or _BODY_OVERHEAD + self.max_batch * _BYTES_PER_ID

    def __post_init__(self) -> None:
        if self.pool_size < 1:
            raise ConfigError(f"{ENV_POOL_SIZE} must be at least 1, got {self.pool_size}")
        if not self.timeout > 0:
            raise ConfigError(f"{ENV_TIMEOUT} must be a positive number, got {self.timeout}")
        if self.max_batch < 1:
            raise ConfigError(f"{ENV_MAX_BATCH} must be at least 1, got {self.max_batch}")
        if self.max_body_bytes is not None and self.max_body_bytes < 64:
            raise ConfigError(f"{ENV_MAX_BODY} must be at least 64 bytes, got "
                              f"{self.max_body_bytes}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); names the variable that is wrong."""
        env = os.environ if env is None else env
        url = env.get(ENV_URL) or env.get("REDIS_URL")
        if not url:
            raise ConfigError(f"set {ENV_URL} (or REDIS_URL) to the Redis the lists live in")
        namespace = env.get(ENV_NAMESPACE)
        if not namespace:
            raise ConfigError(f"set {ENV_NAMESPACE} to the workflow's publish namespace")
        return cls(
            redis_url=url,
            namespace=namespace,
            pool_size=_number(env, ENV_POOL_SIZE, int, 2),
            timeout=_number(env, ENV_TIMEOUT, float, 1.0),
            max_batch=_number(env, ENV_MAX_BATCH, int, 1000),
            max_body_bytes=_number(env, ENV_MAX_BODY, int, 0) or None,
        )


def _number(env: Mapping[str, str], name: str, kind: type[_N], default: _N) -> _N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
