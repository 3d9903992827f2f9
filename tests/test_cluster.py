"""The one place that builds Dask clients: an existing scheduler by address, or a clear error."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.cluster import dask_client, local_worker_count
from pipeline.config import ClusterSpec
from pipeline.errors import RecpipeError
from tests.helpers import free_port


def test_address_mode_joins_a_running_scheduler(dask_client: Any) -> None:
    address = dask_client.scheduler.address
    with dask_client_for(address) as client:
        assert client.scheduler.address == address
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert len(client.scheduler_info()["workers"]) == 2


def dask_client_for(address: str) -> Any:
    return dask_client(ClusterSpec(kind="address", address=address))


def test_unreachable_scheduler_is_a_clear_error() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    spec = ClusterSpec(kind="address", address=address, connect_timeout="2s")
    with (pytest.raises(RecpipeError, match=f"cannot reach the Dask scheduler at {address}"),
          dask_client(spec)):
        pass


def test_local_cluster_defaults_to_one_worker_per_core() -> None:
    with dask_client(ClusterSpec(n_workers=None)) as client:
        assert len(client.scheduler_info()["workers"]) == local_worker_count()
