"""One publisher per namespace: a Redis lock kept alive by a heartbeat thread.

Why: a publish deletes the keys of versions that never became current, which is only safe when no
other publish is writing one right now. The lock expires ``ttl`` seconds after its holder dies
(kill -9 included), so a crashed run never blocks the next one for long.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from types import TracebackType

import redis

from pipeline.errors import RecpipeError

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class PublishError(RecpipeError):
    """Publishing, verifying or rolling back a version failed; ``current`` is unchanged."""


class NamespaceLock:
    """Context manager holding ``key`` while a publish or rollback runs."""

    def __init__(
        self, client: redis.Redis | redis.RedisCluster, key: str, *, ttl: float = 30.0
    ) -> None:
        self._client = client
        self.key = key
        self._ttl_ms = int(ttl * 1000)
        self.token = f"{uuid.uuid4().hex} {socket.gethostname()} pid={os.getpid()} {time.ctime()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def __enter__(self) -> NamespaceLock:
        if not self._client.set(self.key, self.token, nx=True, px=self._ttl_ms):
            holder = self._client.get(self.key)
            if (holder.decode(errors="replace") if isinstance(holder, bytes) else holder) \
                    == self.token:
                # a stalled Redis ran our SET but its reply timed out, and the client's retry
                # found our own lock: it is ours
                return self._start()
            raise PublishError(
                f"another publish or rollback holds {self.key} ({holder!r}); wait for it to "
                f"finish (a crashed holder's lock expires within {self._ttl_ms // 1000} s)"
            )
        return self._start()

    def _start(self) -> NamespaceLock:
        self._thread = threading.Thread(target=self._heartbeat, name="recpipe-lock", daemon=True)
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        refresh = self._client.register_script(_REFRESH)
        while not self._stop.wait(self._ttl_ms / 3000):
            try:
                if not refresh(keys=[self.key], args=[self.token, self._ttl_ms]):
                    self.lost = True
                    return
            except redis.RedisError:
                pass  # Redis down: the publish fails on its own; keep trying until stopped

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        # Redis down now: the lock expires by itself within ttl.
        with contextlib.suppress(redis.RedisError):
            self._client.register_script(_RELEASE)(keys=[self.key], args=[self.token])
