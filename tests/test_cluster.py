"""The one place that builds Dask clients: an existing scheduler by address, or a clear error."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pipeline.cluster import (
    WORKER_MALLOC_ENV,
    dask_client,
    local_worker_count,
    worker_malloc_settings,
)
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
        # and its workers start with malloc settings that keep partition arrays off mmap
        environ = client.run(lambda: {k: os.environ.get(k) for k in WORKER_MALLOC_ENV})
        assert all(
            env == {k: str(v) for k, v in WORKER_MALLOC_ENV.items()} for env in environ.values()
        ), environ


def test_malloc_settings_from_the_environment_win(monkeypatch: pytest.MonkeyPatch) -> None:
    import dask

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4096")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with worker_malloc_settings():
        environ = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert str(environ["MALLOC_TRIM_THRESHOLD_"]) == "4096"
    assert str(environ["MALLOC_MMAP_THRESHOLD_"]) == str(32 * 2**20)
    assert str(environ["OMP_NUM_THREADS"]) == "1"  # Dask's own settings stay


def test_huge_pages_stay_on_when_the_environment_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    import dask

    import pipeline.cluster as cluster

    calls: list[int] = []
    monkeypatch.setattr(cluster, "disable_transparent_hugepages", lambda: calls.append(1))
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    with worker_malloc_settings():
        assert str(dask.config.get("distributed.nanny.pre-spawn-environ")
                   ["NUMPY_MADVISE_HUGEPAGE"]) == "1"
    assert calls == []
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE")
    with worker_malloc_settings():
        pass
    assert calls == [1]


def test_slurm_job_script_carries_the_workflow_settings() -> None:
    from pipeline.cluster import jobqueue_cluster

    spec = ClusterSpec(kind="slurm", queue="gpu", account="recsys", cores=8, memory="64GB",
                       walltime="03:30:00", jobs=4, gpus_per_job=2, rmm_pool_size="20GB",
                       job_extra_directives=["--constraint=a100"])
    with jobqueue_cluster(spec) as cluster:
        script = cluster.job_script()
    lines = script.splitlines()
    for directive in ("#SBATCH -p gpu", "#SBATCH -A recsys", "#SBATCH --cpus-per-task=8",
                      "#SBATCH -t 03:30:00", "#SBATCH --gres=gpu:2",
                      "#SBATCH --constraint=a100", "#SBATCH -J recpipe-worker"):
        assert directive in lines, (directive, script)
    assert any(line.startswith("#SBATCH --mem=") for line in lines)
    assert "export MALLOC_MMAP_THRESHOLD_=33554432" in lines
    command = lines[-1]
    assert " -m dask cuda worker tcp://" in command and "--rmm-pool-size 20GB" in command


def test_pbs_job_script_puts_gpus_in_the_select_statement() -> None:
    from pipeline.cluster import jobqueue_cluster

    spec = ClusterSpec(kind="pbs", queue="workq", account="recsys", cores=16, memory="128GB",
                       walltime="01:00:00", processes=4)
    with jobqueue_cluster(spec) as cluster:
        script = cluster.job_script()
    assert "#PBS -q workq" in script and "#PBS -A recsys" in script
    assert "#PBS -l walltime=01:00:00" in script
    assert "#PBS -l select=1:ncpus=16:mem=" in script
    assert "distributed.cli.dask_worker tcp://" in script and "--nworkers 4" in script

    gpu = spec.model_copy(update={"gpus_per_job": 4})
    with jobqueue_cluster(gpu) as cluster:
        script = cluster.job_script()
    assert "#PBS -l select=1:ncpus=16:mem=122070MB:ngpus=4" in script
    assert "dask cuda worker" in script


def test_cluster_kinds_name_what_they_need() -> None:
    from pipeline.config import parse_workflow
    from pipeline.errors import ConfigError

    base = {"name": "x", "data": {"interactions": {"path": "p", "columns": {
        "user": "u", "item": "i", "timestamp": "t"}}}}
    with pytest.raises(ConfigError, match="needs cluster.cores and cluster.memory"):
        parse_workflow({**base, "cluster": {"kind": "slurm", "queue": "q"}})
    with pytest.raises(ConfigError, match="gpus_per_job applies to kind 'slurm' or 'pbs'"):
        parse_workflow({**base, "cluster": {"kind": "local", "gpus_per_job": 1}})


def test_local_cuda_without_dask_cuda_is_a_clear_error() -> None:
    try:
        import dask_cuda  # noqa: F401
    except ImportError:
        from pipeline.errors import ConfigError

        with (pytest.raises(ConfigError, match="needs dask-cuda"),
              dask_client(ClusterSpec(kind="local-cuda"))):
            pass
    else:
        pytest.skip("dask-cuda is installed: the GPU test below covers it")


@pytest.mark.gpu
def test_local_cuda_cluster_runs_on_the_gpus() -> None:
    pytest.importorskip("dask_cuda")
    with dask_client(ClusterSpec(kind="local-cuda", rmm_pool_size="1GB")) as client:
        assert client.submit(sum, [1, 2]).result() == 3
