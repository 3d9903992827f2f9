"""Peak memory of a benchmark: this process and all its descendants (Dask workers, a
``recpipe run`` subprocess and its cluster), sampled in a background thread. Shared by the
benchmarks so each reports memory the same way."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import psutil


class MemWatch:
    """Peak RSS of this process and all its descendants, sampled in a background thread, with
    each process's share at that peak (where the memory goes).

    The sampler must not steal the cores it measures. RSS is one small read of
    ``/proc/PID/statm`` per process every 50 ms; the process list is refreshed each second (a
    full scan of ``/proc``); PSS walks every page table of a process (the kernel holds that
    process's memory map lock meanwhile), so it is sampled at most twice a second, when the RSS
    is within 3% of its peak, and once every 2 s otherwise."""

    PSS_MIN_GAP_S, PSS_MAX_GAP_S, TREE_REFRESH_S = 0.5, 2.0, 1.0

    def __init__(self, interval: float = 0.05) -> None:
        self.proc, self.interval, self.peak, self.peak_pss = psutil.Process(), interval, 0, 0
        self.peak_parts: dict[str, int] = {}
        self.peak_time = time.perf_counter()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._tree: list[tuple[str, psutil.Process]] = []
        self._tree_time = -1e9
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def tree(self) -> list[tuple[str, psutil.Process]]:
        """This process (``client``: the scheduler and nannies live in it) and its descendants,
        named by their command (Dask workers, the resource tracker); refreshed each second."""
        now = time.perf_counter()
        if now - self._tree_time >= self.TREE_REFRESH_S:
            tree = [("client", self.proc)]
            for p in self.proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    name = "worker" if "spawn_main" in " ".join(p.cmdline()) else p.name()
                    tree.append((name, p))
            self._tree, self._tree_time = tree, now
        return self._tree

    def parts(self) -> dict[str, int]:
        """RSS by process, in bytes."""
        out = {}
        for name, p in self.tree():
            with contextlib.suppress(OSError, ValueError, IndexError), \
                    open(f"/proc/{p.pid}/statm", "rb") as f:
                out[f"{name}-{p.pid}"] = int(f.read().split()[1]) * self._page
        return out

    def rss(self) -> int:
        self._tree_time = -1e9  # a fresh list: called outside the sampler, at phase ends
        return sum(self.parts().values())

    def pss(self) -> int:
        """Proportional set size of the tree: shared pages counted once in all."""
        total = 0
        for _, p in self.tree():
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
        return total

    def _run(self) -> None:
        last_pss = -1e9
        while not self._stop.is_set():
            parts = self.parts()
            total = sum(parts.values())
            now = time.perf_counter()
            if total > self.peak:
                self.peak, self.peak_parts, self.peak_time = total, parts, now
            gap = now - last_pss
            if gap >= self.PSS_MAX_GAP_S or (gap >= self.PSS_MIN_GAP_S
                                             and total >= 0.97 * self.peak):
                self.peak_pss, last_pss = max(self.peak_pss, self.pss()), now
            time.sleep(self.interval)

    def reset(self) -> None:
        self._tree_time = -1e9  # the workers were just started
        self.peak_parts = self.parts()
        self.peak, self.peak_time = sum(self.peak_parts.values()), time.perf_counter()
        self.peak_pss = self.pss()

    def peak_pss_gib(self) -> float:
        return round(max(self.peak_pss, self.pss()) / 2**30, 3)

    def peak_gib(self) -> float:
        return round(max(self.peak, self.rss()) / 2**30, 3)

    def peak_parts_gib(self) -> dict[str, float]:
        """Each process's RSS at the sampled peak, largest first (tiny helpers left out)."""
        big = sorted(self.peak_parts.items(), key=lambda kv: -kv[1])
        return {k: round(v / 2**30, 3) for k, v in big if v > 2**26}
