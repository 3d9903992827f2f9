"""Handing freed heap back to the OS: glibc's malloc_trim is found and callable here."""

from __future__ import annotations

import platform
import subprocess
import sys

import numpy as np
import pytest

from pipeline import memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_and_runs_after_frees() -> None:
    assert memory._malloc_trim() is not None
    blocks = [np.ones(200_000) for _ in range(50)]  # ~80 MB of heap-sized blocks
    del blocks
    assert isinstance(memory.release_free_memory(), bool)


def test_without_glibc_it_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    memory._libc.cache_clear()
    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    try:
        assert memory.release_free_memory() is False
        assert memory.disable_transparent_hugepages() is False
    finally:
        memory._libc.cache_clear()
        memory._malloc_trim.cache_clear()


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim is glibc's")
def test_a_process_under_its_budget_keeps_its_free_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_worker_keep_bytes", lambda: 1 << 50)
    assert memory.release_free_memory() is False  # resident memory is far below the budget
    monkeypatch.setattr(memory, "_worker_keep_bytes", lambda: 1)
    blocks = [np.ones(200_000) for _ in range(50)]
    del blocks
    assert isinstance(memory.release_free_memory(), bool)  # over it: trims


def test_only_dask_workers_have_a_budget(dask_client) -> None:
    assert memory._worker_keep_bytes() == 0  # the client's process always trims
    limits = set(dask_client.run(lambda dask_worker: dask_worker.memory_manager.memory_limit)
                 .values())
    in_task = dask_client.submit(memory._worker_keep_bytes, pure=False).result()
    assert len(limits) == 1 and in_task == int(limits.pop() * memory.KEEP_FRACTION) > 0


def _kernel_reports_thp() -> bool:
    try:
        with open("/proc/self/status") as f:
            return "THP_enabled:" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _kernel_reports_thp(), reason="the kernel does not report THP_enabled")
def test_huge_pages_are_off_for_the_process_and_the_processes_it_starts() -> None:
    """In a fresh interpreter (the flag is for good): off there, and in a child it execs."""
    code = (
        "import subprocess\n"
        "from pipeline.memory import disable_transparent_hugepages\n"
        "assert disable_transparent_hugepages()\n"
        "print(open('/proc/self/status').read())\n"
        "print(subprocess.run(['cat', '/proc/self/status'], capture_output=True, text=True).stdout)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.count("THP_enabled:\t0") == 2, out.stdout
