"""Handing freed heap memory back to the operating system between partitions.

recpipe's workers keep arrays up to 32 MiB on the heap (``pipeline.cluster.WORKER_MALLOC_ENV``):
fast for the recommend stage, whose partitions allocate and free the same sizes over and over.
The feature stage's partitions allocate a different mix of sizes each time (strings, sort
buffers, high-cardinality statistics), and the free holes left between live blocks are never
given back: at 10M rows a 2 GiB worker was restarted for memory it no longer used. glibc's
``malloc_trim(0)`` returns every free page of every arena, holes included; it takes a few
milliseconds, so the feature tasks call it once per partition.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (another OS or C library: nothing to do)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)


def release_free_memory() -> bool:
    """Return freed heap pages to the OS; True when the C library could."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
