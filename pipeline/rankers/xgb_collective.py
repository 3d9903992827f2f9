"""XGBoost's communication group on Dask, started so that a transient failure is retried and a
lost peer ends in an error instead of a hang.

``xgboost.dask.train`` first forms a communication group: every worker connects to a tracker on
the scheduler, then to its ring neighbors. Those connections block in ``recv`` with a receive
timeout set, and on Linux such a call fails with ``EINTR`` when a signal with a handler reaches
the thread, whatever the handler's flags, and also when the process is stopped and resumed, with
no handler at all (a profiler or debugger attaching with ptrace, a cgroup freezer, a paused VM).
XGBoost does not retry it, so one pause at the wrong moment fails the whole training ("Failed to
bootstrap the communication group ... recv Interrupted system call"); nothing is trained or
written by then, so starting again is safe.

A worker whose peer failed that way keeps waiting for the tracker, holding its Dask thread, for the
collective timeout (``COLLECTIVE_TIMEOUT_S``, set here so that recpipe, not XGBoost's default,
bounds the wait). A retry therefore first waits for the failed attempt's tasks to end: started
earlier, the retry's task for that worker would queue behind the stuck one, or be moved by Dask to
the other worker, which XGBoost refuses.

While a ``Progress`` stage listens on the client, the training also reports its boosting rounds
and best validation score so far to it (``pipeline/rankers/xgb_progress.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from pipeline.progress import listening

log = logging.getLogger(__name__)

# Seconds one receive of a collective operation (a bootstrap step, a histogram allreduce) may
# wait for a peer; it bounds how long a worker whose peer failed waits before failing too. The
# peers run in step (same rows per worker, same trees), so waits are short, but a worker still
# building its DMatrix makes the others wait in their first allreduce.
COLLECTIVE_TIMEOUT_S = 120
# Seconds the tracker waits for every worker to join (and to leave) the group. The workers join
# as soon as their training tasks start, their data already in memory; it does not limit the
# training itself.
TRACKER_TIMEOUT_S = 60
ATTEMPTS = 3
BACKOFF_S = 1.0
# Messages of a group that failed to form; anything else (bad data, bad parameters) is not
# retried.
STARTUP_FAILURES = (
    "Failed to bootstrap the communication group",
    "Failed to connect to the tracker",
    "Failed to accept connection",
)


def is_startup_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the communication group never formed (safe to start again)."""
    text = str(exc)
    return any(marker in text for marker in STARTUP_FAILURES)


def root_cause(exc: BaseException) -> str:
    """The innermost line of XGBoost's nested error message (before its stack trace)."""
    lines = [line.strip(" -") for line in str(exc).split("Stack trace:")[0].splitlines()]
    return next((line for line in reversed(lines) if line), type(exc).__name__)


def train_on_cluster(client: Any, params: dict[str, Any], dtrain: Any, *,
                     num_boost_round: int = 10, **kwargs: Any) -> Any:
    """``xgboost.dask.train`` with a collective timeout, retried when the group fails to form.

    Up to ``ATTEMPTS`` tries, ``BACKOFF_S`` doubling between them; each retry is logged as a
    warning with the failure's innermost cause. While a ``Progress`` stage listens on
    ``client``, the rounds done and the best validation score so far reach it, besides the
    caller's ``callbacks``.
    """
    import xgboost.dask as dxgb
    from xgboost.collective import Config

    config = Config(timeout=COLLECTIVE_TIMEOUT_S, tracker_timeout=TRACKER_TIMEOUT_S)
    callbacks = with_progress(client, kwargs.pop("callbacks", None), num_boost_round)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return dxgb.train(client, params, dtrain, num_boost_round=num_boost_round,
                              coll_cfg=config, callbacks=callbacks, **kwargs)
        except Exception as exc:  # XGBoostError, re-raised on the client by Dask
            if attempt == ATTEMPTS or not is_startup_failure(exc):
                raise
            log.warning("XGBoost's workers could not form their communication group "
                        "(attempt %d of %d: %s); starting again once the attempt's tasks end",
                        attempt, ATTEMPTS, root_cause(exc))
            if not wait_until_idle(client, COLLECTIVE_TIMEOUT_S + 30):
                raise
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def with_progress(client: Any, callbacks: Sequence[Any] | None,
                  num_boost_round: int) -> list[Any] | None:
    """The caller's callbacks, plus the rounds' progress when a ``Progress`` stage listens (a
    publisher nobody reads would only fill the scheduler's event log)."""
    if not listening(client):
        return list(callbacks) if callbacks else None
    from pipeline.rankers.xgb_progress import RoundsProgress

    # First: XGBoost skips the callbacks after one that stops the training at that round.
    return [RoundsProgress(num_boost_round), *(callbacks or ())]


def wait_until_idle(client: Any, timeout_s: float, poll_s: float = 0.2) -> bool:
    """Wait until no Dask worker runs or queues a task; False if ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while any(client.processing().values()):
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True
