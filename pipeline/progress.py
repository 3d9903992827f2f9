"""Per-stage progress: Dask tasks done of tasks submitted, with rows, partitions and an ETA.

Why count tasks on the scheduler: a stage is many ``compute``/``to_parquet`` calls, on any
cluster kind; a small ``SchedulerPlugin`` sees every one of them without the stages knowing. On a
terminal the line redraws in place; otherwise (cron, systemd, ``--log-json``) a log record every
``interval`` seconds carries the same numbers as fields.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from distributed import Client
from distributed.diagnostics.plugin import SchedulerPlugin

log = logging.getLogger("recpipe.progress")

PLUGIN_NAME = "recpipe-progress"


class TaskCounter(SchedulerPlugin):
    """Counts tasks entering the graph and tasks finishing (in memory or erred)."""

    name = PLUGIN_NAME

    def __init__(self) -> None:
        self.added = 0
        self.done = 0

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if start == "released" and finish == "waiting":
            self.added += 1
        elif start == "processing" and finish in ("memory", "erred"):
            self.done += 1


def _counts(dask_scheduler: Any) -> tuple[int, int]:
    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    return (plugin.added, plugin.done) if plugin is not None else (0, 0)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Reports each stage's progress while it runs (``stage`` is a context manager)."""

    def __init__(self, client: Client | None, *, stream: TextIO | None = None,
                 tty: bool | None = None, interval: float | None = None) -> None:
        self.client = client
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.5 if self.tty else 30.0)
        self._enabled = False
        if client is not None:
            try:
                client.register_plugin(TaskCounter(), name=PLUGIN_NAME)
                self._enabled = True
            except Exception as exc:  # an old or locked-down scheduler: run without progress
                log.debug("no task progress: %s", exc)

    def counts(self) -> tuple[int, int]:
        if not self._enabled or self.client is None:
            return 0, 0
        return self.client.run_on_scheduler(_counts)

    @contextlib.contextmanager
    def stage(self, name: str, *, rows: int | None = None,
              partitions: int | None = None) -> Iterator[None]:
        if not self._enabled:
            yield
            return
        base = self.counts()
        stop = threading.Event()
        started = time.monotonic()

        def report() -> None:
            while not stop.wait(self.interval):
                try:
                    added, done = (n - b for n, b in zip(self.counts(), base, strict=True))
                except Exception:  # the cluster is going away; the stage reports the error
                    return
                self._emit(name, done, added, time.monotonic() - started, rows, partitions)

        thread = threading.Thread(target=report, name=f"progress-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            if self.tty:
                self.stream.write("\r\033[K")
                self.stream.flush()

    def _emit(self, stage: str, done: int, total: int, elapsed: float, rows: int | None,
              partitions: int | None) -> None:
        total = max(total, done)
        fraction = done / total if total else 0.0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        data = f"{rows:,} rows, {partitions} partitions" if rows is not None else ""
        if self.tty:
            bar = "#" * int(fraction * 20)
            self.stream.write(f"\r\033[K  {stage:<10} [{bar:<20}] {done}/{total} tasks "
                              f"{fraction:4.0%}  ETA {format_eta(eta)}  {data}")
            self.stream.flush()
            return
        log.info("stage %s: %d/%d tasks (%.0f%%), ETA %s %s", stage, done, total,
                 fraction * 100, format_eta(eta), data,
                 extra={"stage": stage, "tasks_done": done, "tasks_total": total,
                        "eta_seconds": None if eta is None else round(eta, 1),
                        "rows": rows, "partitions": partitions})
