"""Logging set-up: plain lines for people, one JSON object per line for machines (``--log-json``).

Why JSON lines: log shippers (journald exporters, Loki, Elastic) parse them without regexes, and
fields a record carries through ``extra=`` (stage, tasks_done, eta_seconds, ...) stay typed.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields, "exc_info"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


_QUIET = {"verbose": False}  # what setup_logging was asked, for route_library_logs


def setup_logging(verbose: bool = False, json_lines: bool = False) -> None:
    """Root handler on stderr; routine Dask chatter kept out unless ``verbose``."""
    handler = logging.StreamHandler()
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    _QUIET["verbose"] = verbose
    route_library_logs()


def route_library_logs() -> None:
    """Route Dask's (and XGBoost's) records through our handler, routine chatter kept out.

    distributed sets its loggers to INFO and adds its own handler when imported, so a command
    that imports it calls this again afterwards. ``setup_logging`` does not import it: a command
    pays for importing Dask only once it needs it (``recpipe run`` checks its lock first).
    """
    verbose = _QUIET["verbose"]
    for name in ("distributed", "dask", "xgboost", "asyncio"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
        if not verbose:
            logger.setLevel(logging.WARNING)
    if not verbose:
        logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
