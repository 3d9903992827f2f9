"""Publishing to a real 3-node Redis Cluster: keys spread over every node, rollback and retention
clean every node, metadata stays in one slot.

The cluster is three ``redis-server`` processes on loopback (no replicas, no persistence), joined
with ``redis-cli --cluster create``; the tests skip when either binary is missing.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from test_publish import FALLBACK, make_lists

from pipeline.publish import current_version, list_versions, publish_lists, rollback
from pipeline.publish.embedded import EmbeddedRedis
from pipeline.publish.keys import Keys

NODES = 3


def _port_pair_free(port: int) -> bool:
    """``port`` and its cluster bus port (``port + 10000``) are both free on loopback."""
    for candidate in (port, port + 10000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                return False
    return True


def _start_nodes(binary: str) -> list[EmbeddedRedis]:
    nodes: list[EmbeddedRedis] = []
    rng = random.Random()
    while len(nodes) < NODES:
        port = rng.randrange(20000, 45000)
        if not _port_pair_free(port):
            continue
        node = EmbeddedRedis(
            port,
            binary=binary,
            args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
        )
        nodes.append(node.start())
    return nodes


def _wait_cluster_ok(nodes: list[EmbeddedRedis], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    clients = [redis.Redis(port=node.port, socket_timeout=1) for node in nodes]
    try:
        while True:
            states = [c.cluster("info").get("cluster_state") for c in clients]
            if all(state == "ok" for state in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not ok after {timeout} s: {states}")
            time.sleep(0.1)
    finally:
        for c in clients:
            c.close()


@pytest.fixture(scope="module")
def cluster_nodes() -> Iterator[list[EmbeddedRedis]]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server and redis-cli are needed on PATH to start a Redis Cluster")
    nodes = _start_nodes(server)
    try:
        subprocess.run(
            [cli, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        _wait_cluster_ok(nodes)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="module")
def cluster_url(cluster_nodes: list[EmbeddedRedis]) -> str:
    return f"redis://127.0.0.1:{cluster_nodes[0].port}/0?cluster=true"


def _user_keys_per_node(nodes: list[EmbeddedRedis], ns: str, version: str) -> list[int]:
    pattern = Keys(ns).user_pattern(version)
    counts = []
    for node in nodes:
        with redis.Redis(port=node.port) as r:
            counts.append(sum(1 for _ in r.scan_iter(match=pattern, count=1000)))
    return counts


def test_publish_read_rollback_and_retention_on_a_cluster(
    dask_client: object, cluster_nodes: list[EmbeddedRedis], cluster_url: str
) -> None:
    ns = "clustered"
    keys = Keys(ns)
    lists, expected = make_lists(n_users=600, npartitions=4)
    first = publish_lists(lists, cluster_url, ns, fallback_items=FALLBACK, keep_versions=2)

    # Every user reads back, through a cluster client that follows the slots.
    rc = redis.RedisCluster(host="127.0.0.1", port=cluster_nodes[1].port)
    try:
        stored = rc.mget_nonatomic([keys.user(first.version, user) for user in expected])
        for (user, (items, scores)), raw in zip(expected.items(), stored, strict=True):
            assert raw is not None, user
            assert json.loads(raw) == {"items": items, "scores": scores}
        assert rc.get(keys.current) == first.version.encode()
        # Metadata shares one slot, so the pointer flip stays one script.
        metadata = [keys.current, keys.versions, keys.cleanup, keys.meta(first.version)]
        assert len({rc.keyslot(k) for k in metadata}) == 1
    finally:
        rc.close()

    per_node = _user_keys_per_node(cluster_nodes, ns, first.version)
    assert sum(per_node) == len(expected)
    assert all(count > 0 for count in per_node), per_node

    # Without ?cluster=true the server is asked, and says it is a cluster.
    plain_url = f"redis://127.0.0.1:{cluster_nodes[2].port}/0"
    assert current_version(plain_url, ns) == first.version

    second = publish_lists(lists, cluster_url, ns, fallback_items=FALLBACK, keep_versions=2)
    third = publish_lists(lists, plain_url, ns, fallback_items=FALLBACK, keep_versions=2)
    assert list_versions(cluster_url, ns) == [second.version, third.version]
    assert third.removed_versions == [first.version]
    assert _user_keys_per_node(cluster_nodes, ns, first.version) == [0] * NODES

    assert rollback(cluster_url, ns) == second.version
    assert current_version(cluster_url, ns) == second.version
    assert _user_keys_per_node(cluster_nodes, ns, third.version) == [0] * NODES
    assert sum(_user_keys_per_node(cluster_nodes, ns, second.version)) == len(expected)
