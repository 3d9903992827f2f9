"""Data-parallel neural ranker training over the Dask workers with ``torch.distributed``.

One task per worker (``pure=False``, pinned to that worker) runs one rank: gloo on CPU, NCCL on
GPU. Rendezvous needs no port guessing: rank 0 opens a ``TCPStore`` on its own host on a port the
OS picks and publishes ``host:port`` through a Dask ``Variable``; the other ranks read it and
connect. Each rank reads its own share of the Parquet row groups (the loader gives every rank the
same number of batches) and DDP averages gradients, so the replicas stay identical; each returns a
digest of its final weights so the client can check that they did.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import torch
import torch.distributed as dist
from distributed import Client, Future, Variable, get_client, get_worker, wait
from torch.nn.parallel import DistributedDataParallel

from pipeline.errors import ConfigError, RecpipeError

from .checkpoint import state_to_numpy
from .neural.config import NeuralConfig
from .neural.fit import pick_device, train_epochs
from .neural.ranker import NeuralRanker

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class RankResult:
    """What one rank reports: its final-weights digest, batches seen, mean loss per epoch and
    seconds from task start (rendezvous included)."""

    rank: int
    worker: str
    digest: str
    batches: int
    history: list[float]
    seconds: float


def weights_digest(state: dict[str, np.ndarray]) -> str:
    """SHA-256 over parameter names and bytes: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(np.ascontiguousarray(state[name]).tobytes())
    return h.hexdigest()


def train_on_dask(
    client: Client,
    config: NeuralConfig,
    paths: PathLike | Sequence[PathLike],
    *,
    workers: Sequence[str] | None = None,
    warm_start: PathLike | None = None,
    loader_options: dict[str, Any] | None = None,
    timeout_s: float = 600.0,
) -> tuple[NeuralRanker, list[RankResult]]:
    """Train ``config``'s model with one DDP rank per worker; the ranker holds rank 0's weights.

    Every worker must see ``paths`` (a shared file system, as for the rest of the pipeline).
    ``timeout_s`` bounds the rendezvous and each collective: a rank that fails alone (the others
    fail together, on the same metadata checks) frees the rest after at most that long.
    """
    addrs = list(workers) if workers else sorted(client.scheduler_info()["workers"])
    if not addrs:
        raise RecpipeError("the Dask cluster has no workers to train on; start some workers")
    token = uuid.uuid4().hex
    path_list = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike))
                                        else paths)]
    warm = None if warm_start is None else os.fspath(warm_start)
    futures = [
        client.submit(
            _run_rank, config.to_json(), path_list, rank, len(addrs), token, warm,
            dict(loader_options or {}), timeout_s,
            key=f"recpipe-ddp-{token}-{rank}", pure=False, workers=[addr],
            allow_other_workers=False,
        )
        for rank, addr in enumerate(addrs)
    ]
    try:
        outputs = _gather_while_workers_stay(client, futures, addrs)
    finally:
        Variable(f"recpipe-ddp-{token}", client=client).delete()
    results = [RankResult(**{k: v for k, v in out.items() if k != "state"}) for out in outputs]
    digests = {r.digest for r in results}
    if len(digests) != 1:
        raise RuntimeError(f"data-parallel replicas ended with different weights ({results!r}); "
                           "this is a bug: report it with the workflow file")
    ranker = NeuralRanker(config, device="cpu", loader_options=loader_options)
    model = ranker.new_model()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in outputs[0]["state"].items()})
    ranker.model_ = model
    ranker.history_ = results[0].history
    return ranker, results


def _gather_while_workers_stay(client: Client, futures: list[Future], workers: list[str],
                               poll_s: float = 5.0) -> list[Any]:
    """The ranks' results; the first rank error is raised as soon as it comes.

    A rank is pinned to its worker: if that worker leaves (killed, out of memory), its task
    would wait for ever for a worker that never comes back, and the other ranks in their
    collectives with it. So the workers are checked every ``poll_s`` while ranks run, and the
    training is cancelled with an error naming them when one has gone.
    """
    pending = list(futures)
    while pending:
        try:
            done, not_done = wait(pending, timeout=poll_s, return_when="FIRST_COMPLETED")
        except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
            gone = sorted(set(workers) - set(client.scheduler_info(n_workers=-1)["workers"]))
            if gone:
                client.cancel(futures)
                raise RecpipeError(
                    f"Dask worker(s) {', '.join(gone)} left during data-parallel training, so "
                    "their ranks cannot finish; run again (the other ranks give up after the "
                    "collective timeout)") from None
            continue
        client.gather([f for f in done if f.status == "error"])  # raises a rank's error
        pending = list(not_done)
    return client.gather(futures)


def _run_rank(
    config_json: dict[str, Any],
    paths: list[str],
    rank: int,
    world_size: int,
    token: str,
    warm_start: str | None,
    loader_options: dict[str, Any],
    timeout_s: float,
) -> dict[str, Any]:
    """One DDP rank, run as a Dask task on its worker."""
    start = time.perf_counter()
    config = NeuralConfig.from_json(config_json)
    worker = get_worker()
    device = pick_device()
    backend = "nccl" if device.type == "cuda" else "gloo"
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, worker.state.nthreads))
    try:
        store = _rendezvous(worker.address, rank, world_size, token, timeout_s)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout_s))
        ranker = NeuralRanker(config, device=device, loader_options=loader_options)
        loader = ranker.loader(paths, train=True, rank=rank, world_size=world_size)
        model = ranker.new_model(warm_start).to(device)
        ddp = DistributedDataParallel(model, device_ids=[device.index or 0]
                                      if device.type == "cuda" else None)
        history = train_epochs(ddp, loader, config, device)
        state = state_to_numpy(model.state_dict())
        dist.barrier()  # every rank is done: no collective is left in flight
    finally:
        if dist.is_initialized():
            _destroy_process_group()
        torch.set_num_threads(threads)
    out: dict[str, Any] = {"rank": rank, "worker": worker.address,
                           "digest": weights_digest(state), "batches": len(loader) * config.epochs,
                           "history": history, "seconds": time.perf_counter() - start}
    if rank == 0:
        out["state"] = state
    return out


def _destroy_process_group(pause_s: float = 0.2) -> None:
    """Destroy the process group once gloo's threads have let go of their finished work.

    A gloo thread frees each finished collective itself, and that needs the GIL (the work keeps
    Python references in its copy of the thread-local state), while ``~ProcessGroupGloo`` joins
    those threads holding the GIL: destroyed too soon after the last collective, the two wait
    for each other for ever and the frozen Dask worker stops heartbeating. Sleeping releases the
    GIL so they can finish first.
    """
    time.sleep(pause_s)
    dist.destroy_process_group()


def _rendezvous(address: str, rank: int, world_size: int, token: str,
                timeout_s: float) -> dist.TCPStore:
    """Rank 0 hosts the store on a free port it publishes; the others connect to it."""
    var = Variable(f"recpipe-ddp-{token}", client=get_client())
    timeout = timedelta(seconds=timeout_s)
    if rank == 0:
        host = urlsplit(address).hostname or "127.0.0.1"
        store = dist.TCPStore(host, 0, world_size, is_master=True, timeout=timeout,
                              wait_for_workers=False)
        var.set(f"{host}:{store.port}")
        return store
    try:
        where = var.get(timeout=timeout_s)
    except TimeoutError:
        raise ConfigError(f"rank {rank} waited {timeout_s:.0f} s for rank 0 to start; are all "
                          "workers able to run a task at once?") from None
    host, port = str(where).rsplit(":", 1)
    return dist.TCPStore(host, int(port), world_size, is_master=False, timeout=timeout)
