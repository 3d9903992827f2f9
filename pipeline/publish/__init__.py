"""Publish per-user lists to Redis: versioned keys, verification, atomic pointer flip, retention.

The key scheme and value encoding are documented in ``pipeline.publish.keys``. Names are imported
lazily so the lookup API (which uses ``keys`` and ``embedded``) does not load Dask and pandas.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "EmbeddedRedis": "pipeline.publish.embedded",
    "redis_connection": "pipeline.publish.connect",
    "PublishError": "pipeline.publish.lock",
    "PublishReport": "pipeline.publish.writer",
    "current_version": "pipeline.publish.writer",
    "list_versions": "pipeline.publish.writer",
    "publish_lists": "pipeline.publish.writer",
    "rollback": "pipeline.publish.writer",
    "version_stands": "pipeline.publish.writer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline.publish' has no attribute {name!r}")
