"""Pre-encoded Redis commands: build the RESP bytes of many commands at once, send them pipelined.

Why: building each ``SET`` through redis-py's command layer runs Python for every command
(argument encoding, a Python object per command), a large share of a publish. Here a partition's
commands are laid out by Arrow kernels into one contiguous buffer; slices of it go to the server
with ``sendall`` on a connection borrowed from the client's pool (so AUTH, TLS, ``SELECT`` and
RESP3 are redis-py's business), and the replies are read back with hiredis.

Two command shapes: ``MSETNX`` of a few hundred keys at once, which costs the server less than as
many ``SET key value GET`` commands do (one command dispatch and one reply per chunk), and
``SET key value [EX ttl] GET`` per key, which reports each key's old value. In a Redis Cluster the
commands are grouped by the primary that owns each key's slot; every primary's share is sent before
any reply is read, so the nodes work in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis
from redis.crc import key_slot

try:
    import hiredis
except ImportError:  # redis[hiredis] is a dependency; without it replies are read by redis-py
    hiredis = None  # type: ignore[assignment]


def pack(*args: bytes) -> bytes:
    """The RESP bytes of one command (for the few commands not built in bulk)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


def set_get_commands(
    keys: pa.StringArray, values: pa.StringArray, ttl: int | None
) -> pa.StringArray:
    """``SET key value [EX ttl] GET`` per row, each element one command's RESP bytes.

    ``GET`` returns the old value: nil for a new key, which is how a publish counts what it
    created and notices a user written twice.
    """
    argc, expire = (4, "") if ttl is None else (6, f"$2\r\nEX\r\n${len(str(ttl))}\r\n{ttl}\r\n")
    length = {  # RESP bulk strings carry their length in bytes
        name: pc.cast(pc.binary_length(array), pa.string())
        for name, array in (("key", keys), ("value", values))
    }
    return pc.binary_join_element_wise(
        f"*{argc}\r\n$3\r\nSET\r\n$", length["key"], "\r\n", keys, "\r\n$", length["value"],
        "\r\n", values, f"\r\n{expire}$3\r\nGET\r\n", "",
    )  # fmt: skip


def msetnx_commands(keys: pa.StringArray, values: pa.StringArray, chunk: int) -> list[Any]:
    """``MSETNX`` commands of ``chunk`` (key, value) pairs each, as buffers to send back to back.

    The pairs' RESP bytes are built in one pass and stay one buffer; each command is its header
    followed by a zero-copy slice of that buffer.
    """
    length = {
        name: pc.cast(pc.binary_length(array), pa.string())
        for name, array in (("key", keys), ("value", values))
    }
    pairs = pc.binary_join_element_wise(
        "$", length["key"], "\r\n", keys, "\r\n$", length["value"], "\r\n", values, "\r\n", "",
    )  # fmt: skip
    parts: list[Any] = []
    for lo in range(0, len(pairs), chunk):
        share = pairs[lo : lo + chunk]
        parts.append(b"*%d\r\n$6\r\nMSETNX\r\n" % (2 * len(share) + 1))
        parts.append(contiguous(share))
    return parts


def contiguous(commands: pa.StringArray) -> memoryview:
    """All elements of ``commands`` as one zero-copy buffer (they are stored back to back)."""
    _, offsets, data = commands.buffers()
    width = 8 if pa.types.is_large_string(commands.type) else 4
    bounds = np.frombuffer(offsets, dtype=np.int64 if width == 8 else np.int32)
    lo = int(bounds[commands.offset])
    hi = int(bounds[commands.offset + len(commands)])
    return memoryview(data)[lo:hi] if data is not None else memoryview(b"")


class Pending:
    """Commands sent on one borrowed connection whose replies are still to be read."""

    def __init__(self, client: redis.Redis, payload: Any, count: int) -> None:
        """Send ``payload`` (one buffer, or a list of buffers sent back to back)."""
        self._pool = client.connection_pool
        self._conn = self._pool.get_connection()
        self.count = count
        try:
            self._conn.send_packed_command(payload if isinstance(payload, list) else [payload])
        except BaseException:
            self._pool.release(self._conn)
            raise

    def replies(self) -> list[Any]:
        """Read every reply; an error reply (OOM, MOVED) is returned as a ``ResponseError``."""
        try:
            sock = getattr(self._conn, "_sock", None)
            if hiredis is None or sock is None:
                return self._replies_one_by_one()
            return self._replies_from_socket(sock)
        except BaseException:
            self._conn.disconnect()  # unread replies would be taken for the next command's
            raise
        finally:
            self._pool.release(self._conn)

    def _replies_from_socket(self, sock: Any) -> list[Any]:
        """Parse the replies straight off the socket with a fresh hiredis reader.

        redis-py's ``read_response`` runs a layer of Python for every reply; here hiredis parses
        whole socket reads and Python only collects the replies. The connection's own parser
        holds nothing at this point: every earlier reply on it was read.
        """
        reader = hiredis.Reader()
        out: list[Any] = []
        while len(out) < self.count:
            reply = reader.gets()
            if reply is False:
                data = sock.recv(1 << 20)
                if not data:
                    raise redis.ConnectionError("Redis closed the connection while replying")
                reader.feed(data)
            elif isinstance(reply, hiredis.ReplyError):
                out.append(redis.ResponseError(str(reply)))
            else:
                out.append(reply)
        return out

    def _replies_one_by_one(self) -> list[Any]:
        out: list[Any] = []
        for _ in range(self.count):
            try:
                out.append(self._conn.read_response(disable_decoding=True))
            except redis.ResponseError as exc:  # the reply is consumed; go on with the rest
                out.append(exc)
        return out


def run(client: redis.Redis, commands: Sequence[bytes]) -> list[Any]:
    """Send already packed single commands pipelined on ``client``; return their replies."""
    if not commands:
        return []
    return Pending(client, b"".join(commands), len(commands)).replies()


class Router:
    """Which client receives a key: the one server, or in a cluster the primary of its slot."""

    def __init__(self, client: redis.Redis | redis.RedisCluster) -> None:
        self._client = client
        self._nodes: dict[int, str] = {}
        self._clients: dict[str, redis.Redis] = {}

    @property
    def cluster(self) -> bool:
        return isinstance(self._client, redis.RedisCluster)

    def groups(self, keys: pa.StringArray) -> list[tuple[redis.Redis, np.ndarray]]:
        """(node client, row indices) pairs covering every key once."""
        if not isinstance(self._client, redis.RedisCluster):
            return [(self._client, np.arange(len(keys)))]
        names = np.array([self._node(key_slot(key.encode())) for key in keys.to_pylist()])
        labels, inverse = np.unique(names, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(labels) + 1))
        return [
            (self._clients[str(name)], order[bounds[i] : bounds[i + 1]])
            for i, name in enumerate(labels)
        ]

    def _node(self, slot: int) -> str:
        name = self._nodes.get(slot)
        if name is None:
            assert isinstance(self._client, redis.RedisCluster)
            node = self._client.nodes_manager.get_node_from_slot(slot)
            name = node.name
            if name not in self._clients:
                self._clients[name] = self._client.get_redis_connection(node)
            self._nodes[slot] = name
        return name
