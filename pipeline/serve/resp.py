"""A minimal asyncio Redis client for the lookup hot path: hiredis parsing, multiplexed connections.

Why not ``redis.asyncio``: its CPU per ``GET`` (connection checkout, command packing, response
callbacks, retry machinery) outweighs the Redis round trip itself, and per-request CPU is the whole
budget when the API and its clients share two cores. This client does only what the lookup needs:
send a few commands in one write and parse the replies with ``hiredis.Reader`` (the C parser
redis-py uses too). Concurrent requests share a connection: commands go out in order and replies
come back in order (Redis guarantees that), so each request waits on one future, and writes made in
the same event-loop turn leave in one ``send``. URL parsing (``redis://``, ``rediss://``,
``unix://``, password, db) is redis-py's.

Failure semantics match what the API promises: a refused or lost connection, or a reply slower than
``timeout``, fails every request waiting on that connection with ``RedisUnavailable`` (the API
answers 503); the next request connects again, so the API recovers by itself when Redis returns.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from typing import Any, cast

import hiredis
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url


class RedisUnavailable(Exception):
    """Redis could not be reached, the connection broke, or a reply took longer than the timeout."""


class RedisReplyError(Exception):
    """Redis answered a command with an error (e.g. ``NOAUTH``, ``WRONGTYPE``)."""


_Reply = Any  # bytes | None | int | list | hiredis.ReplyError
Command = tuple[Any, ...]  # ("GET", key), arguments str, bytes or int


class _Waiter:
    """One batch of commands written together; resolved once all ``count`` replies arrived."""

    __slots__ = ("count", "future", "replies", "sent")

    def __init__(self, future: asyncio.Future[list[_Reply]], count: int, sent: float) -> None:
        self.future = future
        self.count = count
        self.replies: list[_Reply] = []
        self.sent = sent


class _Connection(asyncio.Protocol):
    """One socket to Redis; many requests in flight, answered in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._waiting: collections.deque[_Waiter] = collections.deque()
        self._outbox: list[bytes] = []
        self._watchdog: asyncio.TimerHandle | None = None
        self.closed = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        try:
            reply = reader.gets()
            while reply is not False:
                if not waiting:
                    raise RedisUnavailable("Redis sent a reply nobody asked for")
                waiter = waiting[0]
                waiter.replies.append(reply)
                if len(waiter.replies) == waiter.count:
                    waiting.popleft()
                    if not waiter.future.done():
                        waiter.future.set_result(waiter.replies)
                reply = reader.gets()
        except (hiredis.ProtocolError, RedisUnavailable) as exc:
            self._fail(RedisUnavailable(f"bad reply from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisUnavailable(f"connection to Redis lost: {exc or 'closed by the server'}"))

    # -- sending
    def send(self, packed: bytes, count: int) -> asyncio.Future[list[_Reply]]:
        """Queue ``count`` packed commands; the future gets their replies, in order."""
        future: asyncio.Future[list[_Reply]] = self._loop.create_future()
        if self.closed:
            future.set_exception(RedisUnavailable("connection to Redis is closed"))
            return future
        if not self._outbox:
            self._loop.call_soon(self._flush)
        self._outbox.append(packed)
        self._waiting.append(_Waiter(future, count, time.monotonic()))
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout, self._check_timeout)
        return future

    def _flush(self) -> None:
        if self._outbox and self._transport is not None and not self.closed:
            self._transport.write(b"".join(self._outbox))
        self._outbox.clear()

    def _check_timeout(self) -> None:
        """Fail everything if the oldest request waited ``timeout``; otherwise look again later."""
        self._watchdog = None
        if not self._waiting or self.closed:
            return
        overdue = self._waiting[0].sent + self._timeout - time.monotonic()
        if overdue <= 0:
            self._fail(RedisUnavailable(f"Redis did not answer within {self._timeout} s"))
        else:
            self._watchdog = self._loop.call_later(overdue, self._check_timeout)

    def _fail(self, exc: RedisUnavailable) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future = self._waiting.popleft().future
            if not future.done():
                future.set_exception(exc)
        self._outbox.clear()

    def close(self) -> None:
        self._fail(RedisUnavailable("connection closed by the client"))


def pack(*commands: Command) -> bytes:
    """RESP encoding of ``commands``, ready for ``RespPool.execute_packed``."""
    return b"".join(hiredis.pack_command(c) for c in commands)


class RespPool:
    """``pool_size`` multiplexed connections to the Redis at ``url``, used round-robin.

    Bound to the event loop that first uses it (asyncio connections cannot cross loops).
    """

    def __init__(self, url: str, *, pool_size: int = 2, timeout: float = 1.0) -> None:
        self._options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self._timeout = timeout
        self._slots: list[_Connection | None] = [None] * pool_size
        self._connecting: list[asyncio.Future[_Connection] | None] = [None] * pool_size
        self._next = 0

    async def execute(self, *commands: Command) -> list[_Reply]:
        """Replies to ``commands``, sent in one write; raises on the first error reply."""
        return await self.execute_packed(pack(*commands), len(commands))

    async def execute_packed(self, packed: bytes, count: int) -> list[_Reply]:
        """Like ``execute`` for pre-packed commands (saves packing on the hot path)."""
        index = self._next = (self._next + 1) % len(self._slots)
        conn = self._slots[index]
        if conn is None or conn.closed:
            conn = await self._connect(index)
        replies = await conn.send(packed, count)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise RedisReplyError(str(reply))
        return replies

    async def _connect(self, index: int) -> _Connection:
        """One connection per slot, even when many requests find the slot empty at once."""
        pending = self._connecting[index]
        if pending is None:
            pending = asyncio.ensure_future(self._open())
            self._connecting[index] = pending
            try:
                conn = await pending
            except BaseException:
                # Retrieve the exception so asyncio does not log it for other waiters' sake.
                self._connecting[index] = None
                raise
            self._slots[index], self._connecting[index] = conn, None
            return conn
        return await asyncio.shield(pending)

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        opts = self._options
        conn = _Connection(loop, self._timeout)
        cls = opts.get("connection_class")
        try:
            if cls is UnixDomainSocketConnection:
                connect = loop.create_unix_connection(lambda: conn, opts["path"])
            else:
                context = ssl.create_default_context() if cls is SSLConnection else None
                connect = loop.create_connection(
                    lambda: conn, opts.get("host", "localhost"), opts.get("port", 6379),
                    ssl=context,
                )
            await asyncio.wait_for(connect, self._timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise RedisUnavailable(f"cannot connect: {exc or type(exc).__name__}") from None
        setup: list[Command] = []
        if opts.get("password"):
            user = opts.get("username")
            setup.append(("AUTH", user, opts["password"]) if user else ("AUTH", opts["password"]))
        if opts.get("db"):
            setup.append(("SELECT", int(opts["db"])))
        if setup:
            replies = await conn.send(pack(*setup), len(setup))
            for reply in replies:
                if isinstance(reply, hiredis.ReplyError):
                    conn.close()
                    raise RedisReplyError(str(reply))
        return conn

    def close(self) -> None:
        for conn in self._slots:
            if conn is not None:
                conn.close()
        self._slots = [None] * len(self._slots)
