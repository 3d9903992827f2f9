"""Getting a fitted plan to every worker: in the task graph, or through a memory-mapped file.

A fitted plan holds every statistic the transform looks up (vocabularies, target encodings),
which grows with the data. Put in the task graph, it is pickled on the client, unpickled whole
by the scheduler (which, on a local cluster, lives in the client's process: a second copy
there), pickled again per worker, and unpickled by each worker: a large share of the
transform's time and of the client's memory.

When every worker can read the client's files (a local cluster, or a directory every node
mounts, named by ``RECPIPE_SHARED_DIR``), the plan is instead written once as a file (in shared
memory, ``/dev/shm``, on a local cluster when it has room): a small pickle stream whose NumPy
and Arrow buffers are stored out of band (pickle protocol 5), each aligned, after it. The graph
carries only a ``PlanFile`` handle (path, size, token); a worker maps the file and unpickles the
stream over the mapped buffers, so its arrays are read-only views of the page cache (or shared
memory): loaded without a copy, and shared by all the workers of a node instead of copied into
each. The file is scratch, not an artifact (``Workflow.save`` writes the JSON + Parquet format).
It is removed when the client's handle is collected, which Dask may delay (its comms keep a log
of recent messages) until the process exits; files a killed process left behind are swept after
a day.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import mmap
import os
import pickle
import shutil
import socket
import stat
import struct
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dask

SHARED_DIR_ENV = "RECPIPE_SHARED_DIR"
"""A directory every Dask worker can read at the same path (multi-node clusters)."""
MIN_FILE_BYTES = 16 << 20
"""Smaller plans travel in the graph: a file saves nothing for them."""
STALE_AFTER_S = 24 * 3600.0
_MAGIC = b"RECPLAN1"
_ALIGN = 64
_CACHED_PLANS = 2  # per process: the plan being transformed with, and the one before


class PlanFile:
    """Handle to a plan written by ``write_plan``; ``load()`` gives the plan in any process.

    Only the handle created by ``write_plan`` owns the file (removes it when collected);
    copies unpickled in other processes never remove it.
    """

    def __init__(self, path: str, size: int, token: str) -> None:
        self.path, self.size, self.token = path, size, token

    def __reduce__(self) -> tuple[Any, ...]:
        return PlanFile, (self.path, self.size, self.token)

    def __repr__(self) -> str:
        return f"PlanFile({self.path!r}, {self.size} bytes)"

    def load(self) -> Any:
        """The plan, mapped once per process and cached (the last few plans)."""
        with _LOCK:
            plan = _LOADED.get(self.token)
            if plan is None:
                plan = _read(self.path, self.size)
                _LOADED[self.token] = plan
                while len(_LOADED) > _CACHED_PLANS:
                    _LOADED.popitem(last=False)
            else:
                _LOADED.move_to_end(self.token)
            return plan


_LOADED: collections.OrderedDict[str, Any] = collections.OrderedDict()
_LOCK = threading.Lock()


def ship(obj: Any, name: str, adopt: Callable[[Any], None] | None = None) -> Any:
    """``obj`` as one graph key that every task depends on (sent to each worker once).

    Large objects go by file when the workers can read it (see the module docstring); then
    ``adopt`` receives the file's memory-mapped copy of ``obj``, in this process, so the
    caller can drop its own copy.
    Not ``Client.scatter``: scattered data is lost for good when a worker restarts (e.g. on
    memory pressure), while a graph key is recomputed, so a long out-of-core run survives.
    """
    directories = shared_directories()
    if directories:
        handle = write_plan(obj, directories)
        if handle is not None:
            obj = handle
            if adopt is not None:
                adopt(handle.load())
    return dask.delayed(obj, name=f"{name}-{uuid.uuid4().hex}", traverse=False)


def resolve(obj: Any) -> Any:
    """What a task received through ``ship``: the plan itself."""
    return obj.load() if isinstance(obj, PlanFile) else obj


def write_plan(
    obj: Any, directories: Path | Sequence[Path], min_bytes: int | None = None
) -> PlanFile | None:
    """Write ``obj`` as a plan file in the first of ``directories`` that is private to this
    user and has room; None when it is under ``min_bytes`` (default ``MIN_FILE_BYTES``) or
    no directory takes it."""
    buffers: list[pickle.PickleBuffer] = []
    stream = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    limit = MIN_FILE_BYTES if min_bytes is None else min_bytes
    if len(stream) + sum(v.nbytes for v in views) < limit:
        return None
    header = struct.Struct(f"<8sQQ{2 * len(views)}Q")
    offset = _aligned(header.size + len(stream))
    table = []
    for view in views:
        table += [offset, view.nbytes]
        offset = _aligned(offset + view.nbytes)
    for directory in [directories] if isinstance(directories, Path) else directories:
        path = _new_file(directory, offset)
        if path is None:
            continue
        try:
            with open(path, "wb") as out:
                out.write(header.pack(_MAGIC, len(stream), len(views), *table))
                out.write(stream)
                for view, start in zip(views, table[::2], strict=True):
                    out.seek(start)
                    out.write(view)
                out.truncate(max(offset, 1))
        except OSError:  # full after all (another writer): the next directory, or the graph
            _remove(str(path))
            continue
        handle = PlanFile(str(path), offset, uuid.uuid4().hex)
        weakref.finalize(handle, _remove, str(path))
        return handle
    return None


def _new_file(directory: Path, size: int) -> Path | None:
    """A fresh file name in ``directory`` if it is usable for ``size`` bytes, else None."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(directory) or shutil.disk_usage(directory).free < size + (64 << 20):
            return None
    except OSError:
        return None
    _sweep(directory)
    return directory / f"plan-{uuid.uuid4().hex}.bin"


def _read(path: str, size: int) -> Any:
    """Map a plan file and unpickle it over the mapped buffers (no copy of the arrays)."""
    try:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"fitted plan file {path} is not readable from this Dask worker on "
            f"{socket.gethostname()}: set {SHARED_DIR_ENV} to a directory every worker mounts "
            "at the same path, or unset it to ship plans through the scheduler"
        ) from exc
    view = memoryview(mapped)
    magic, stream_len, count = struct.unpack_from("<8sQQ", view)
    if magic != _MAGIC:
        raise ValueError(f"{path} is not a recpipe plan file")
    table = struct.unpack_from(f"<{2 * count}Q", view, 24)
    start = 24 + 16 * count
    buffers = [view[o : o + n] for o, n in zip(table[::2], table[1::2], strict=True)]
    return pickle.loads(view[start : start + stream_len], buffers=buffers)


def _private(directory: Path) -> bool:
    """Whether only this user can write in ``directory``: workers unpickle what is there, so
    a directory someone else owns or can write to (say, a /tmp path created first by another
    user) is not used; the plan then travels in the task graph."""
    if not hasattr(os, "getuid"):
        return True
    info = directory.stat()
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _sweep(directory: Path, max_age_s: float = STALE_AFTER_S) -> None:
    """Remove plan files older than ``max_age_s`` (left by a process that was killed)."""
    cutoff = time.time() - max_age_s
    for path in directory.glob("plan-*.bin"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _remove(path: str) -> None:
    # A mapping outlives the unlink on POSIX; where it cannot (Windows) the sweep removes it.
    with contextlib.suppress(OSError):
        os.unlink(path)


def shared_directories() -> list[Path]:
    """Where plan files may go, best first: ``RECPIPE_SHARED_DIR``; else, when every worker
    runs on this machine, shared memory (``/dev/shm``: memory, quicker to write than a
    disk-backed /tmp) and then the temporary directory; none otherwise (the plan travels in the
    task graph)."""
    configured = os.environ.get(SHARED_DIR_ENV)
    if configured:
        return [Path(configured) / "recpipe-plans"]
    if not _workers_are_local():
        return []
    name = f"recpipe-plans-{os.getuid() if hasattr(os, 'getuid') else 0}"
    shm = Path("/dev/shm")
    return [*([shm / name] if shm.is_dir() else []), Path(tempfile.gettempdir()) / name]


def _workers_are_local() -> bool:
    """True when the active Dask client's workers all run on this host (without a client,
    tasks run in this process and a graph key costs nothing)."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return False
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return bool(workers) and all(_is_this_host(w.get("host", "")) for w in workers.values())


def _is_this_host(host: str) -> bool:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    names = {socket.gethostname(), socket.getfqdn(), "localhost"}
    with contextlib.suppress(OSError):
        names |= set(socket.gethostbyname_ex(socket.gethostname())[2])
    return host in names
