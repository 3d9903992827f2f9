"""User-facing errors.

Anything a user can fix (a missing file, a bad workflow key, an unreachable Redis) raises a
``RecpipeError`` whose message names the file, column or key and says what to do. The CLI prints
the message without a traceback and exits with ``exit_code``.
"""

from __future__ import annotations


class RecpipeError(Exception):
    """An error the user can fix; its message says what went wrong and how to fix it."""

    exit_code = 2


class ConfigError(RecpipeError):
    """The workflow file is invalid (unknown key, wrong type, missing mapping)."""


class DataError(RecpipeError):
    """Input data is missing or does not match what the workflow expects."""


class StoreUnavailableError(RecpipeError):
    """The Redis server cannot be reached or refused a command."""

    exit_code = 3


class RunLockedError(RecpipeError):
    """Another run of the same workflow holds its lock; a scheduler should retry later.

    75 is sysexits' EX_TEMPFAIL ("try again later"), which systemd and cron wrappers know.
    """

    exit_code = 75
