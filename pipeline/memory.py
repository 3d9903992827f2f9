"""Handing freed heap memory back to the operating system between partitions.

recpipe's workers keep arrays up to 32 MiB on the heap (``pipeline.cluster.WORKER_MALLOC_ENV``):
fast for the recommend stage, whose partitions allocate and free the same sizes over and over.
The feature stage's partitions allocate a different mix of sizes each time (strings, sort
buffers, high-cardinality statistics), and the free holes left between live blocks are never
given back, so a worker can reach its memory limit, and be restarted, for memory it no longer
uses. glibc's ``malloc_trim(0)`` returns every free page of every arena, holes included.

Returning pages is not free, though: the next partition faults them back in, and on a virtual
machine that reports freed pages to its host (free page reporting, common in clouds) each page comes
back through the host, slowly. So a Dask worker keeps its free heap while its resident memory stays
under ``KEEP_FRACTION`` of its memory limit (under Dask's spill target, 60%, with room for a
partition's working set) and trims past it; other processes always trim.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable

KEEP_FRACTION = 0.45
"""A Dask worker trims only once its resident memory passes this share of its memory limit."""


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    """The C library on Linux, or None (another OS, or no ``libc.so.6``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (another OS or C library: nothing to do)."""
    libc = _libc()
    return getattr(libc, "malloc_trim", None) if libc is not None else None


PR_SET_THP_DISABLE = 41  # <linux/prctl.h>


def disable_transparent_hugepages() -> bool:
    """Stop this process (and the processes it starts) from using transparent huge pages;
    True if the kernel agreed.

    NumPy asks for huge pages for every array of 4 MB or more (``madvise``). On a virtual
    machine whose host backs guest memory in 4 KiB pages, a huge page's first touch costs far
    more than 512 small ones, and workers touch fresh memory all through a fit (its statistics
    grow with the data). The flag is inherited across fork and exec, so a local cluster's
    workers get it from the process that starts it; NumPy's own switch
    (``NUMPY_MADVISE_HUGEPAGE=0``) is only read at import.
    """
    libc = _libc()
    return libc is not None and libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0


def release_free_memory() -> bool:
    """Return freed heap pages to the OS; True when the C library did. In a Dask worker, only
    past ``KEEP_FRACTION`` of its memory limit (see the module docstring)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    keep = _worker_keep_bytes()
    if keep and _resident_bytes() < keep:
        return False
    return bool(trim(0))


def _worker_keep_bytes() -> int:
    """Resident bytes this process may keep untrimmed: 0 outside a Dask worker with a limit."""
    try:
        from distributed import get_worker

        limit = get_worker().memory_manager.memory_limit
    except (ImportError, ValueError, AttributeError):
        return 0
    return int(limit * KEEP_FRACTION) if limit else 0


def _resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:  # Linux (where glibc's malloc_trim is)
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
