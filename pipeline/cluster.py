"""The one place that builds the Dask client.

``local`` starts a ``distributed.LocalCluster`` sized to the machine (one single-threaded worker
process per core, memory split between them); ``local-cuda`` a dask-cuda ``LocalCUDACluster`` (one
worker per GPU, RMM pool, spilling); ``address`` connects to a running scheduler; ``slurm`` and
``pbs`` submit worker jobs through dask-jobqueue. Every stage takes the client this returns, so a
workflow runs unchanged on a laptop or a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import dask
from distributed import Client, LocalCluster

from pipeline.config import ClusterSpec
from pipeline.errors import ConfigError, RecpipeError
from pipeline.memory import disable_transparent_hugepages

log = logging.getLogger(__name__)


#: glibc malloc settings for worker processes, set before they start. Dask's default
#: (``MALLOC_TRIM_THRESHOLD_=65536``, to hand freed memory back to the OS) also freezes glibc's mmap
#: threshold at 128 KiB, so every array a partition allocates is a fresh ``mmap`` whose pages fault
#: in on first touch, in every partition again. With these, arrays up to 32 MiB (a few million rows
#: per column) come from the heap and up to 128 MiB of freed heap is kept for the next partition, so
#: memory stays bounded by the partition. The feature tasks, whose partitions leave holes of mixed
#: sizes in that heap, hand them back after each partition (``pipeline.memory``).
#: Arrow's allocator (mimalloc) keeps the pages it frees (``MIMALLOC_PURGE_DELAY=-1``; its default
#: hands them back 10 ms after a free): each Parquet read and write would otherwise fault its
#: buffers in afresh, and what it keeps is at most the largest partition's Arrow working set.
#: NumPy does not ask for transparent huge pages
#: (``NUMPY_MADVISE_HUGEPAGE=0``; see ``pipeline.memory.disable_transparent_hugepages``). A
#: variable set in the environment wins.
WORKER_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": 32 * 2**20,
    "MALLOC_TRIM_THRESHOLD_": 128 * 2**20,
    "MIMALLOC_PURGE_DELAY": -1,
    "NUMPY_MADVISE_HUGEPAGE": 0,
}


@contextlib.contextmanager
def worker_malloc_settings() -> Iterator[None]:
    """Within this block, Dask nannies start their workers with ``WORKER_MALLOC_ENV``.

    Unless the environment says ``NUMPY_MADVISE_HUGEPAGE=1``, this process (the client and a
    local scheduler, which receive the fitted statistics) stops using transparent huge pages
    too, for good: NumPy read its own switch when it was imported.
    """
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    environ.update({k: os.environ.get(k, v) for k, v in WORKER_MALLOC_ENV.items()})
    if str(environ["NUMPY_MADVISE_HUGEPAGE"]) == "0":
        disable_transparent_hugepages()
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        yield


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
    if spec.kind in ("slurm", "pbs"):
        with jobqueue_cluster(spec) as cluster, Client(cluster) as client:
            cluster.scale(jobs=spec.jobs)
            log.info("submitted %d %s job(s) of workers; waiting for the first", spec.jobs,
                     spec.kind)
            try:
                client.wait_for_workers(1, timeout=spec.wait_timeout)
            except TimeoutError:
                raise RecpipeError(
                    f"no {spec.kind} worker job started within cluster.wait_timeout="
                    f"{spec.wait_timeout}; check the queue ('squeue'/'qstat') and "
                    "cluster.queue/account/walltime"
                ) from None
            yield client
        return
    cluster = local_cuda_cluster(spec) if spec.kind == "local-cuda" else local_cluster(spec)
    log.info("started a %s Dask cluster: %d workers, dashboard %s", spec.kind,
             len(cluster.workers), cluster.dashboard_link)
    with cluster, Client(cluster) as client:
        yield client


def local_cluster(spec: ClusterSpec) -> LocalCluster:
    with worker_malloc_settings():
        return LocalCluster(
            n_workers=spec.n_workers or local_worker_count(),
            threads_per_worker=spec.threads_per_worker,
            processes=True,
            memory_limit=spec.memory_limit,
            dashboard_address=spec.dashboard_address,  # default: this host, a free port
        )


def local_cuda_cluster(spec: ClusterSpec) -> Any:
    """One worker per visible GPU (or ``n_workers``), with an RMM pool and device spilling."""
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise ConfigError(
            "cluster.kind 'local-cuda' needs dask-cuda: install the GPU extra "
            "(pip install -e '.[gpu]') or use kind 'local'"
        ) from None
    kwargs: dict[str, Any] = {
        "threads_per_worker": spec.threads_per_worker,
        "memory_limit": spec.memory_limit,
        "dashboard_address": spec.dashboard_address,
        "rmm_pool_size": spec.rmm_pool_size,
        "enable_cudf_spill": spec.enable_cudf_spill,
    }
    if spec.n_workers:
        kwargs["n_workers"] = spec.n_workers
    if spec.device_memory_limit:
        kwargs["device_memory_limit"] = spec.device_memory_limit
    if spec.local_directory:
        kwargs["local_directory"] = spec.local_directory
    with worker_malloc_settings():
        return LocalCUDACluster(**kwargs)


def jobqueue_cluster(spec: ClusterSpec) -> Any:
    """A dask-jobqueue SLURM/PBS cluster object (no job submitted until ``scale``).

    GPUs per job become the scheduler's own directive (``--gres=gpu:N`` / ``ngpus=N``) and the
    job starts ``dask cuda worker`` (one worker per GPU) instead of a plain Dask worker.
    """
    try:
        from dask_jobqueue import PBSCluster, SLURMCluster
    except ImportError:
        raise ConfigError(
            f"cluster.kind '{spec.kind}' needs dask-jobqueue: pip install dask-jobqueue==0.9.0"
        ) from None
    directives = list(spec.job_extra_directives)
    kwargs: dict[str, Any] = {
        "queue": spec.queue, "account": spec.account, "cores": spec.cores,
        "memory": spec.memory, "walltime": spec.walltime, "processes": spec.processes,
        "interface": spec.interface, "local_directory": spec.local_directory,
        "python": sys.executable, "job_name": "recpipe-worker",
        "scheduler_options": {"dashboard_address": spec.dashboard_address},
        # the job's nanny passes these to its workers (see WORKER_MALLOC_ENV)
        "job_script_prologue": [f"export {k}={v}" for k, v in WORKER_MALLOC_ENV.items()],
    }
    if spec.gpus_per_job:
        kwargs["processes"] = 1  # dask cuda worker starts one process per GPU itself
        kwargs["worker_command"] = "dask cuda worker"
        extra = []
        if spec.rmm_pool_size:
            extra += ["--rmm-pool-size", spec.rmm_pool_size]
        if spec.device_memory_limit:
            extra += ["--device-memory-limit", spec.device_memory_limit]
        kwargs["worker_extra_args"] = extra
    if spec.kind == "slurm":
        if spec.gpus_per_job:
            directives.append(f"--gres=gpu:{spec.gpus_per_job}")
        return SLURMCluster(job_extra_directives=directives, **kwargs)
    if spec.gpus_per_job:  # PBS Pro: GPUs are a chunk resource of the select statement
        from dask.utils import parse_bytes

        mem = f"{parse_bytes(spec.memory or '0') // 2**20}MB"
        kwargs["resource_spec"] = f"select=1:ncpus={spec.cores}:mem={mem}:ngpus={spec.gpus_per_job}"
    return PBSCluster(job_extra_directives=directives, **kwargs)
