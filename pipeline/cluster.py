"""The one place that builds the Dask client.

``local`` starts a ``distributed.LocalCluster`` sized to the machine (one single-threaded worker
process per core, memory split between them); ``address`` connects to a running scheduler. Every
stage takes the client this returns, so a workflow runs unchanged on a laptop or a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from distributed import Client, LocalCluster

from pipeline.config import ClusterSpec
from pipeline.errors import RecpipeError

log = logging.getLogger(__name__)


def local_worker_count() -> int:
    """Cores this process may use (cgroup/affinity aware), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(spec: ClusterSpec | None = None) -> Iterator[Client]:
    """Yield a Dask client for ``spec``; a cluster it started is closed on exit."""
    spec = spec or ClusterSpec()
    env_address = os.environ.get("DASK_SCHEDULER_ADDRESS")
    address = spec.address if spec.kind == "address" else env_address
    if address:
        try:
            client = Client(address, timeout=spec.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise RecpipeError(
                f"cannot reach the Dask scheduler at {address} ({exc}); start it with "
                "'dask scheduler' or fix cluster.address / DASK_SCHEDULER_ADDRESS"
            ) from None
        log.info("connected to Dask scheduler %s", address)
        with client:
            yield client
        return
    n_workers = spec.n_workers or local_worker_count()
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=spec.threads_per_worker,
        processes=True,
        memory_limit=spec.memory_limit,
        dashboard_address=":0",  # a free port: nightly runs on one host must not collide
    )
    log.info("started a local Dask cluster: %d workers x %d threads, dashboard %s", n_workers,
             spec.threads_per_worker, cluster.dashboard_link)
    with cluster, Client(cluster) as client:
        yield client
