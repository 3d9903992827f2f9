"""SIGTERM (what systemd, Kubernetes and ``kill`` send) handled like Ctrl-C.

Why: without a handler the process dies at once, leaving the manifest's stage "running" and
nothing recorded; raising ``Terminated`` lets the runner mark the stage failed and the run lock,
the Dask cluster and Redis connections close as on any error. The CLI then exits 143 (128 + 15).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived; a BaseException so no ``except Exception`` swallows it."""

    exit_code = EXIT_SIGTERM


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within this block the first SIGTERM raises ``Terminated`` in the main thread; later
    ones are ignored so the clean-up it starts is not cut short (SIGKILL still ends it)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated("interrupted by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
