"""Getting a fitted plan to every worker: in the task graph, or through a memory-mapped file.

A fitted plan holds every statistic the transform looks up (vocabularies, target encodings),
which grows with the data. Put in the task graph, it is pickled on the client, unpickled whole
by the scheduler (which, on a local cluster, lives in the client's process: a second copy
there), pickled again per worker, and unpickled by each worker: a large share of the
transform's time and of the client's memory.

When every worker can read the client's files (a local cluster, or a directory every node
mounts, named by ``RECPIPE_SHARED_DIR``), the plan is instead written once as a file: a small
pickle stream whose NumPy and Arrow buffers are stored out of band (pickle protocol 5), each
aligned, after it. The graph carries only a ``PlanFile`` handle (path, size, key, digest); a
worker maps the file and unpickles the stream over the mapped buffers, so its arrays are
read-only views of the page cache (or shared memory): loaded without a copy, and shared by all
the workers of a node instead of copied into each. The file is scratch, not an artifact
(``Workflow.save`` writes the JSON + Parquet format). It is removed when the client's handle is
collected, which Dask may delay (its comms keep a log of recent messages) until the process
exits; files a killed process left behind are swept after a day.

Where: ``$RECPIPE_SHARED_DIR/recpipe-plans/`` when that is set; otherwise, when every worker
runs on this host, ``/dev/shm/recpipe-plans-UID/`` (shared memory, when it has room), then
``recpipe-plans-UID/`` in the temporary directory (``$TMPDIR``, usually ``/tmp``); otherwise the
plan travels in the task graph. A folder is used only if it is a real folder (not a symbolic
link), owned by this user and writable by no one else; files are created afresh, never through
a symbolic link.

Unpickling runs code, so a worker loads only what the client wrote: the client authenticates
the whole file (header, stream and buffers) with HMAC-SHA256 under a fresh random key per file,
which travels to the workers in the ``PlanFile`` handle inside the task graph and is never
written to disk; a worker checks the file against it, over the mapped bytes, before unpickling,
and refuses a file that fails (``PlanFileError``).
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import ipaddress
import mmap
import os
import pickle
import secrets
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

from pipeline.errors import RecpipeError

SHARED_DIR_ENV = "RECPIPE_SHARED_DIR"
"""A directory every Dask worker can read at the same path (multi-node clusters)."""
MIN_FILE_BYTES = 16 << 20
"""Smaller plans travel in the graph: a file saves nothing for them."""
STALE_AFTER_S = 24 * 3600.0
_MAGIC = b"RECPLAN1"
_ALIGN = 64
_CACHED_PLANS = 2  # per process: the plan being transformed with, and the one before
_KEY_BYTES = 32
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class PlanFileError(RecpipeError):
    """A plan file that is not exactly what the client wrote: it is never unpickled."""


class PlanFile:
    """Handle to a plan written by ``write_plan``; ``load()`` gives the plan in any process.

    ``key`` and ``digest`` authenticate the file (HMAC-SHA256 of all its bytes); they travel
    with the handle, never beside the file. Only the handle created by ``write_plan`` owns the
    file (removes it when collected); copies unpickled in other processes never remove it.
    """

    def __init__(self, path: str, size: int, token: str, key: bytes, digest: bytes) -> None:
        self.path, self.size, self.token = path, size, token
        self.key, self.digest = key, digest

    def __reduce__(self) -> tuple[Any, ...]:
        return PlanFile, (self.path, self.size, self.token, self.key, self.digest)

    def __repr__(self) -> str:
        return f"PlanFile({self.path!r}, {self.size} bytes)"

    def load(self) -> Any:
        """The plan, mapped once per process and cached (the last few plans)."""
        with _LOCK:
            plan = _LOADED.get(self.token)
            if plan is None:
                plan = _read(self)
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
    pieces = [header.pack(_MAGIC, len(stream), len(views), *table), stream]
    end = header.size + len(stream)
    for view, start in zip(views, table[::2], strict=True):
        pieces += [bytes(start - end), view]
        end = start + view.nbytes
    pieces.append(bytes(offset - end))
    for directory in [directories] if isinstance(directories, Path) else directories:
        handle = _write_in(directory, pieces, offset)
        if handle is not None:
            return handle
    return None


def _write_in(directory: Path, pieces: list[Any], size: int) -> PlanFile | None:
    """``pieces`` written as a new plan file of ``size`` bytes in ``directory``, and its
    handle; None if the directory is not private to this user or lacks room."""
    folder = _open_private(directory)
    if folder is None:
        return None
    name = f"plan-{uuid.uuid4().hex}.bin"
    path = str(directory / name)
    key = secrets.token_bytes(_KEY_BYTES)
    mac = hmac.new(key, digestmod="sha256")
    try:
        if shutil.disk_usage(directory).free < size + (64 << 20):
            return None
        _sweep(directory)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        with open(os.open(name, flags, 0o600, dir_fd=folder), "wb") as out:
            for piece in pieces:
                out.write(piece)
                mac.update(piece)
    except OSError:  # full after all (another writer): the next directory, or the graph
        _remove(path)
        return None
    finally:
        os.close(folder)
    handle = PlanFile(path, size, uuid.uuid4().hex, key, mac.digest())
    weakref.finalize(handle, _remove, path)
    return handle


def _read(handle: PlanFile) -> Any:
    """Map a plan file, check it is the one the client wrote, and unpickle it over the mapped
    buffers (no copy of the arrays)."""
    path = handle.path
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"fitted plan file {path} is not readable from this Dask worker on "
            f"{socket.gethostname()}: set {SHARED_DIR_ENV} to a directory every worker mounts "
            "at the same path, or unset it to ship plans through the scheduler"
        ) from exc
    except OSError as exc:  # ELOOP: the path is a symbolic link
        raise PlanFileError(f"fitted plan file {path} cannot be opened as a plain file "
                            f"({exc.strerror}); it is not loaded") from exc
    try:
        size = os.fstat(fd).st_size
        if size != handle.size:
            raise _changed(path, f"it has {size} bytes, not the {handle.size} written")
        mapped = mmap.mmap(fd, handle.size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    view = memoryview(mapped)
    mac = hmac.new(handle.key, digestmod="sha256")
    mac.update(view)  # over the mapped pages: no copy
    if not hmac.compare_digest(mac.digest(), handle.digest):
        view.release()
        mapped.close()
        raise _changed(path, "its HMAC-SHA256 does not match the client's")
    magic, stream_len, count = struct.unpack_from("<8sQQ", view)
    if magic != _MAGIC:
        raise ValueError(f"{path} is not a recpipe plan file")
    table = struct.unpack_from(f"<{2 * count}Q", view, 24)
    start = 24 + 16 * count
    buffers = [view[o : o + n] for o, n in zip(table[::2], table[1::2], strict=True)]
    return pickle.loads(view[start : start + stream_len], buffers=buffers)


def _changed(path: str, why: str) -> PlanFileError:
    return PlanFileError(
        f"fitted plan file {path} is not the file the client wrote ({why}), so it is not "
        f"unpickled: something else wrote to {Path(path).parent}. Make sure only this user "
        "can write there, and run again"
    )


def _open_private(directory: Path) -> int | None:
    """A descriptor of ``directory`` (created if missing) when only this user can write in
    it, else None. Workers unpickle what is there, so a folder that is a symbolic link (whose
    owner can point it elsewhere at any time), that someone else owns or that group or others
    can write to (say, a /tmp path another user created first) is not used, and the plan
    travels in the task graph. Checked on the folder itself, opened without following a link
    (``lstat``'s view, with no gap between the check and the use)."""
    if not hasattr(os, "getuid") or os.open not in os.supports_dir_fd:
        return None  # no POSIX ownership to check: plans travel in the graph
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    except OSError:
        return None
    info = os.fstat(folder)
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        os.close(folder)
        return None
    return folder


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
    """Where plan files may go, best first: ``$RECPIPE_SHARED_DIR/recpipe-plans`` when set;
    else, when every worker runs on this machine, ``/dev/shm/recpipe-plans-UID`` (shared
    memory, quicker to write than a disk-backed /tmp) and then ``recpipe-plans-UID`` in the
    temporary directory (``$TMPDIR``, usually ``/tmp``); none otherwise (the plan travels in
    the task graph)."""
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
