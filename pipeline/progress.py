"""Per-stage progress: the work a stage measures (partitions, rows, boosting rounds) done of its
total, else Dask tasks done of tasks submitted, with an ETA from whichever is shown.

Why measures: one long task (an XGBoost training) makes task counts meaningless ("2546/2595
tasks (98%), ETA 0:00:05" for minutes). A stage that knows its unit of work reports it, and the
ETA comes from that unit's rate; task counts, seen by a small ``SchedulerPlugin`` on any cluster
without the stages knowing, are shown only while no measure is active.

How a stage reports its work
----------------------------
From the stage's own code, on the client::

    self.progress.measure("partitions", done, total)
    self.progress.measure("rows", rows_done, rows_total, note="users 0-9999")

The latest measure reported in a stage is shown, and gives the ETA, until the stage ends. Its
rate is measured from its first report: report ``done=0`` when the work starts; a report whose
name or total differs, or whose ``done`` goes back, starts a new measure. Keyword arguments
become fields of the log record. Outside a stage, and on ``Progress(None)``, it does nothing.

From a task on a Dask worker, ``publish_measure(name, done, total, note, **fields)`` sends the
same through Dask's event channel (``Worker.log_event`` on topic ``TOPIC``); the ``Progress``
whose stage is open on the client subscribes to it for the stage's duration. The task limits
itself to a few events a second. ``listening(client)`` says on the client whether a stage
listens, so that a publisher is shipped only then. XGBoost's training does this
(``pipeline/rankers/xgb_progress.py``): ``boosting rounds`` done of the maximum, with the best
validation score so far.

What it shows
-------------
On a terminal the line redraws in place::

    train      [########            ] 120/300 boosting rounds  40%  ETA 0:01:10  best ndcg@10 ...

Otherwise (cron, systemd, ``--log-json``) a log record every ``interval`` seconds, such as
``stage train: 120/300 boosting rounds (40%, best ndcg@10 0.4312 at 96), ETA 0:01:10``, carries
the numbers as fields: ``stage``, ``measure`` (``tasks`` when no stage measure is active),
``done``, ``total``, ``eta_seconds``, the measure's own fields (XGBoost: ``metric``,
``best_score``, ``best_round``, ``rounds_max``), and as before ``tasks_done``, ``tasks_total``,
``rows`` and ``partitions``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

import dask
from distributed import Client, as_completed
from distributed.diagnostics.plugin import SchedulerPlugin

log = logging.getLogger("recpipe.progress")

PLUGIN_NAME = "recpipe-progress"
TOPIC = "recpipe-progress"
TASKS = "tasks"

# Names a measure's own field may not take: the log record's attributes and the fields every
# progress record carries.
_RECORD_FIELDS = {"stage", "measure", "done", "total", "eta_seconds", "tasks_done",
                  "tasks_total", "rows", "partitions", "message", "asctime"}
_RESERVED = _RECORD_FIELDS | set(vars(logging.makeLogRecord({})))


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


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


@dataclass(frozen=True)
class Measure:
    """Units of work done of a total; its rate runs from ``since`` (when ``done_since`` were done)
    to ``updated`` (the latest report)."""

    name: str
    done: float
    total: float
    note: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    since: float = 0.0
    done_since: float = 0.0
    updated: float = 0.0

    def continues(self, earlier: Measure | None) -> bool:
        """Whether this report goes on from ``earlier`` (same work, ``done`` not gone back)."""
        return (earlier is not None and earlier.name == self.name
                and earlier.total == self.total and self.done >= earlier.done)

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total > 0 else 0.0

    def eta(self, now: float) -> float | None:
        """Seconds left at the measured rate, counting the time since the latest report as
        spent; None until the work has advanced."""
        if self.total > 0 and self.done >= self.total:
            return 0.0
        gained = self.done - self.done_since
        if gained <= 0 or self.total <= 0:
            return None
        left = (self.total - self.done) * (self.updated - self.since) / gained
        return max(0.0, left - (now - self.updated))

    def text(self) -> str:
        return f"{_number(self.done)}/{_number(self.total)} {self.name}"


class _StageState:
    """The open stage's name, start and latest measure (set from any thread)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._measure: Measure | None = None

    def update(self, name: str, done: float, total: float, note: str,
               fields: dict[str, Any]) -> None:
        now = time.monotonic()
        report = Measure(name, done, total, note, fields, since=now, done_since=done,
                         updated=now)
        with self._lock:
            if report.continues(self._measure):
                assert self._measure is not None
                report = replace(report, since=self._measure.since,
                                 done_since=self._measure.done_since)
            self._measure = report

    def measure(self) -> Measure | None:
        with self._lock:
            return self._measure


# Progress sinks listening for worker measures, by client id. A client subscribes once, for its
# life: an event still in flight when a stage ends is dropped here, where after an unsubscribe
# Dask would log it as an error.
_sinks_lock = threading.Lock()
_sinks: dict[str, list[Callable[[Any], None]]] = {}
_subscribed: set[str] = set()


def listening(client: Any) -> bool:
    """Whether a ``Progress`` stage listens for worker measures on ``client``."""
    with _sinks_lock:
        return bool(_sinks.get(getattr(client, "id", None) or ""))


def _dispatch(client_id: str, event: Any) -> None:
    """Dask's event handler (on the client's event loop): hands ``(time, msg)`` to the sinks."""
    with _sinks_lock:
        sinks = list(_sinks.get(client_id, ()))
    for sink in sinks:
        sink(event[1])


def _listen(client: Client, sink: Callable[[Any], None]) -> bool:
    with _sinks_lock:
        if client.id not in _subscribed:
            try:
                client.subscribe_topic(TOPIC, functools.partial(_dispatch, client.id))
            except Exception as exc:  # a closing client: the stage runs without worker measures
                log.debug("no worker progress: %s", exc)
                return False
            _subscribed.add(client.id)
        _sinks.setdefault(client.id, []).append(sink)
    return True


def _unlisten(client: Client, sink: Callable[[Any], None]) -> None:
    with _sinks_lock:
        sinks = _sinks.get(client.id, [])
        if sink in sinks:
            sinks.remove(sink)
        if not sinks:
            _sinks.pop(client.id, None)


def publish_measure(name: str, done: float, total: float, note: str = "",
                    **fields: Any) -> bool:
    """From a task on a Dask worker: report a measure to the stage listening on the client (see
    the module docstring). Values must be plain numbers and strings; False, and nothing sent,
    outside a Dask worker."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return False
    worker.log_event(TOPIC, {"name": name, "done": done, "total": total, "note": note,
                             "fields": fields})
    return True


class Progress:
    """Reports each stage's progress while it runs (``stage`` is a context manager)."""

    def __init__(self, client: Client | None, *, stream: TextIO | None = None,
                 tty: bool | None = None, interval: float | None = None) -> None:
        self.client = client
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.5 if self.tty else 30.0)
        self._enabled = False
        self._stage: _StageState | None = None
        if client is not None:
            try:
                client.register_plugin(TaskCounter(), name=PLUGIN_NAME)
                self._enabled = True
            except Exception as exc:  # an old or locked-down scheduler: run without task counts
                log.debug("no task progress: %s", exc)

    def counts(self) -> tuple[int, int]:
        if not self._enabled or self.client is None:
            return 0, 0
        return self.client.run_on_scheduler(_counts)

    def measure(self, name: str, done: float, total: float, note: str = "",
                **fields: Any) -> None:
        """The open stage has done ``done`` of ``total`` ``name`` (see the module docstring)."""
        state = self._stage
        if state is not None:
            state.update(name, done, total, note,
                         {k: v for k, v in fields.items() if k not in _RESERVED})

    def compute(self, tasks: list[Any], name: str = "partitions") -> list[Any]:
        """Compute Dask ``tasks`` (delayed objects) on the cluster, reporting each finished one
        as the stage's ``name`` measure; the results in task order."""
        if self.client is None:
            return list(dask.compute(*tasks))
        futures = self.client.compute(tasks)
        self.measure(name, 0, len(futures))
        for done, _ in enumerate(as_completed(futures), start=1):
            self.measure(name, done, len(futures))
        return self.client.gather(futures)

    def _on_event(self, msg: Any) -> None:
        """A worker's measure (``publish_measure``); a malformed one is dropped."""
        try:
            name, done, total = str(msg["name"]), msg["done"], msg["total"]
            if not all(isinstance(n, (int, float)) for n in (done, total)):
                raise TypeError("done and total must be numbers")
            self.measure(name, done, total, str(msg.get("note", "")),
                         **dict(msg.get("fields") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            log.debug("dropped a progress event %r: %s", msg, exc)

    @contextlib.contextmanager
    def stage(self, name: str, *, rows: int | None = None,
              partitions: int | None = None) -> Iterator[None]:
        if self.client is None:
            yield
            return
        client = self.client
        base = self.counts()
        state = _StageState(name)
        self._stage = state
        listens = _listen(client, self._on_event)
        stop = threading.Event()

        def report() -> None:
            while not stop.wait(self.interval):
                try:
                    tasks = self._tasks_since(base)
                except Exception:  # the cluster is going away; the stage reports the error
                    return
                self._emit(state, tasks, rows, partitions)

        thread = threading.Thread(target=report, name=f"progress-{name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self._stage = None
            if listens:
                _unlisten(client, self._on_event)
            if self.tty:
                self.stream.write("\r\033[K")
                self.stream.flush()

    def _tasks_since(self, base: tuple[int, int]) -> tuple[int, int] | None:
        """(done, submitted) tasks since the stage began; None without the scheduler plugin."""
        if not self._enabled:
            return None
        added, done = (n - b for n, b in zip(self.counts(), base, strict=True))
        return done, max(added, done)

    def _emit(self, state: _StageState, tasks: tuple[int, int] | None, rows: int | None,
              partitions: int | None) -> None:
        now = time.monotonic()
        shown = state.measure()
        if shown is None:
            if tasks is None:
                return
            # Task counts' rate runs from the stage's start, when none were done.
            shown = Measure(TASKS, tasks[0], tasks[1], since=state.started, updated=now)
        eta = shown.eta(now)
        data = f"{rows:,} rows, {partitions} partitions" if rows is not None else ""
        if self.tty:
            self._draw(state.name, shown, eta, data)
            return
        detail = ", ".join(t for t in (f"{shown.fraction:.0%}", shown.note) if t)
        log.info("stage %s: %s (%s), ETA %s%s", state.name, shown.text(), detail,
                 format_eta(eta), f", {data}" if data else "",
                 extra={**shown.fields, "stage": state.name, "measure": shown.name,
                        "done": shown.done, "total": shown.total,
                        "eta_seconds": None if eta is None else round(eta, 1),
                        "tasks_done": tasks[0] if tasks else None,
                        "tasks_total": tasks[1] if tasks else None,
                        "rows": rows, "partitions": partitions})

    def _draw(self, stage: str, shown: Measure, eta: float | None, data: str) -> None:
        bar = "#" * int(shown.fraction * 20)
        self.stream.write(f"\r\033[K  {stage:<10} [{bar:<20}] {shown.text()} "
                          f"{shown.fraction:4.0%}  ETA {format_eta(eta)}  "
                          + "  ".join(t for t in (shown.note, data) if t))
        self.stream.flush()
