"""Connections for a Redis URL: one server or a Redis Cluster, with AUTH and TLS, checked once.

URL convention (publish, rollback, the CLI; the same URL goes to every Dask worker):

* ``redis://[[user]:password@]host:port/0``: plain TCP; the password (and ACL user) are sent with
  ``AUTH`` by redis-py. A wrong password fails at once with a message naming the URL, password
  masked as ``***``.
* ``rediss://...``: TLS, passed through to redis-py unchanged; its query options apply, e.g.
  ``?ssl_cert_reqs=required&ssl_ca_certs=/path/ca.pem``.
* Redis Cluster: add ``cluster=true`` to the query, e.g.
  ``redis://:pw@node1:7000/0?cluster=true`` (any node will do; the others are discovered). Without
  the parameter the server is asked (``INFO cluster``) and a cluster is detected by itself;
  ``cluster=false`` skips the question.
  The parameter is recpipe's, and is removed before the URL reaches redis-py. A cluster has only
  database 0.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from pipeline.errors import StoreUnavailableError
from pipeline.publish import wire

Client = redis.Redis | redis.RedisCluster

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


_SECRET_QUERY = ("password", "passwd", "username", "user", "token", "secret")


def mask_url(url: str) -> str:
    """The URL with every credential it can carry replaced by ``***`` (the user and password
    of its userinfo, and ``password=``/``username=``-like query values), fit for messages and
    logs. The one masking function: everything that logs or reports a Redis URL calls it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # unparsable: show the scheme only, never the rest
        return f"{url.split(':', 1)[0]}:***" if ":" in url else "***"
    netloc = parts.netloc
    if "@" in netloc:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        if port is not None:
            host = f"{host}:{port}"
        user = "***" if parts.username else ""
        netloc = f"{user}:***@{host}" if parts.password is not None else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret(name) for name, _ in pairs):
            query = "&".join(f"{name}=***" if _secret(name) else urlencode([(name, value)])
                             for name, value in pairs)
    if netloc != parts.netloc:
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    if query != parts.query:  # keep the rest as written (urlunsplit turns unix:/// into unix:/)
        return f"{url.split('?', 1)[0]}?{query}"
    return url


def _secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_QUERY)


def unavailable(url: str, exc: BaseException) -> StoreUnavailableError:
    """The error to raise when Redis at ``url`` cannot be reached: names the URL and the fix."""
    return StoreUnavailableError(
        f"cannot reach Redis at {mask_url(url)} ({type(exc).__name__}: {exc}). "
        "Start Redis there, or set REDIS_URL to a running server."
    )


def split_cluster_flag(url: str) -> tuple[str, bool | None]:
    """(the URL for redis-py, the ``cluster`` query flag: True, False or None when absent)."""
    parts = urlsplit(url)
    flag: bool | None = None
    rest = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "cluster":
            rest.append((name, value))
        elif value.lower() in _TRUE:
            flag = True
        elif value.lower() in _FALSE:
            flag = False
        else:
            raise StoreUnavailableError(
                f"bad Redis URL {mask_url(url)}: cluster={value!r}; use cluster=true or false"
            )
    return urlunsplit(parts._replace(query=urlencode(rest))), flag


def with_cluster_flag(url: str, cluster: bool) -> str:
    """``url`` with an explicit ``cluster=`` flag, so workers need not ask the server again."""
    plain, _ = split_cluster_flag(url)
    parts = urlsplit(plain)
    query = urlencode(
        [*parse_qsl(parts.query, keep_blank_values=True), ("cluster", str(cluster).lower())]
    )
    return urlunsplit(parts._replace(query=query))


def _open(url: str, cluster: bool, timeout: float, retries: int) -> Client:
    kwargs = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if cluster:
        return redis.RedisCluster.from_url(url, **kwargs)
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries)
    return redis.Redis.from_url(url, retry=retry, **kwargs)


def redis_connection(url: str, *, retries: int = 2, timeout: float = 5.0) -> Client:
    """A client for ``url`` that answered PING: ``redis.RedisCluster`` for a cluster (see the
    module docstring), else ``redis.Redis``. Unreachable or refusing servers raise
    ``StoreUnavailableError`` quickly, naming the URL with the password masked."""
    plain, cluster = split_cluster_flag(url)
    try:
        client = _open(plain, bool(cluster), timeout, retries)
        client.ping()
        if cluster is None and client.info("cluster").get("cluster_enabled"):
            client.close()
            client = _open(plain, True, timeout, retries)
            client.ping()
    except ValueError as exc:
        raise StoreUnavailableError(
            f"bad Redis URL {mask_url(url)}: {exc}; use redis://[:PASSWORD@]HOST:PORT/DB"
        ) from exc
    except (redis.AuthenticationError, redis.ResponseError) as exc:  # NOAUTH / WRONGPASS
        raise StoreUnavailableError(
            f"Redis at {mask_url(url)} refused the connection: {exc}; check the password in the URL"
        ) from exc
    except (redis.ConnectionError, redis.TimeoutError, RedisClusterException, OSError) as exc:
        raise unavailable(url, exc) from exc
    return client


def resolved_url(url: str, client: Client) -> str:
    """``url`` with the cluster flag ``client`` was opened with (what workers should use)."""
    return with_cluster_flag(url, isinstance(client, redis.RedisCluster))


def primaries(client: Client) -> list[redis.Redis]:
    """One client per primary: the server itself, or every primary node of a cluster."""
    if isinstance(client, redis.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def scan_delete(
    client: Client,
    pattern: str,
    keep: Callable[[bytes], bool] = lambda key: False,
    batch: int = 2000,
) -> int:
    """``UNLINK`` every key matching ``pattern`` (unless ``keep(key)``), scanning every primary.

    One ``UNLINK`` per key, pipelined per node: in a cluster a multi-key command must stay in one
    slot, and user keys spread over all of them. Returns how many keys were unlinked.
    """
    removed = 0
    for node in primaries(client):
        doomed: list[bytes] = []
        for key in node.scan_iter(match=pattern, count=5000):
            if not keep(key):
                doomed.append(wire.pack(b"UNLINK", key))
            if len(doomed) >= batch:
                removed += _unlink(node, doomed)
                doomed = []
        removed += _unlink(node, doomed)
    return removed


def _unlink(node: redis.Redis, commands: list[bytes]) -> int:
    errors = [r for r in wire.run(node, commands) if isinstance(r, Exception)]
    if errors:
        raise errors[0]
    return len(commands)
