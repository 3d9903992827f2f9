"""One run per workflow at a time: an exclusive ``flock`` on ``RUN_DIR/<name>/.lock``.

Why a kernel file lock: it is released by the kernel when the holder exits for any reason
(SIGKILL, OOM kill, a crashed node's process table), so a dead run never blocks the next night,
and there is no stale-lock clean-up to get wrong. The file also records who holds it, for the
message the second run prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from pipeline.errors import RunLockedError
from pipeline.manifest import utc_now

LOCK_NAME = ".lock"


class RunLock:
    """Context manager holding the workflow's run lock; raises ``RunLockedError`` if taken."""

    def __init__(self, workflow_dir: Path, *, date: str = "") -> None:
        self.path = workflow_dir / LOCK_NAME
        self.date = date
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLockedError(
                f"another run of this workflow holds {self.path} ({holder}); wait for it to "
                "finish (the lock is released as soon as that process exits, even if killed)"
            ) from None
        os.ftruncate(fd, 0)
        who = {"pid": os.getpid(), "host": socket.gethostname(), "date": self.date,
               "since": utc_now()}
        os.pwrite(fd, json.dumps(who).encode() + b"\n", 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        """Release the lock now (idempotent), e.g. before serving what the run published."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
