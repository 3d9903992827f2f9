"""Handing freed heap back to the OS: glibc's malloc_trim is found and callable here."""

from __future__ import annotations

import platform
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
    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    try:
        assert memory.release_free_memory() is False
    finally:
        memory._malloc_trim.cache_clear()
