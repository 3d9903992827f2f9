"""The Redis key scheme and value encoding of published lists (a contract: apps may read Redis).

Metadata keys of a namespace ``NS`` share the hash tag ``{NS}``, so in a Redis Cluster they live in
one slot and the pointer flip stays one atomic script; user keys carry no hash tag and spread out:

====================================  ======  ==================================================
key                                   type    holds
====================================  ======  ==================================================
``recpipe:{NS}:current``              string  the current version, e.g. ``20261128T031500Z``
``recpipe:{NS}:versions``             list    kept versions, oldest first; the last is current
``recpipe:{NS}:meta:VERSION``         hash    ``users``, ``k``, ``created_at``, ``user_id_type``
                                              and ``item_id_type`` (``int`` or ``str``)
``recpipe:{NS}:fallback:VERSION``     string  the list for unknown users (same encoding)
``recpipe:{NS}:cleanup``              set     versions whose keys are to be deleted: being
                                              written, left by a failed publish, or retired
``recpipe:{NS}:lock``                 string  held by the running publish or rollback
``recpipe:{NS}:rolled_back``          set     versions an operator rolled back; re-running
                                              their night does not publish them again
``recpipe:NS:v:VERSION:u:USER_ID``    string  one user's list; ``USER_ID`` is ``str(raw id)``
====================================  ======  ==================================================

A value is compact JSON ``{"items":[...],"scores":[...]}``: items keep their raw type (int or
string), in rank order; scores are rounded to 6 significant digits. To read a user: ``GET current``,
then ``GET`` the user key under that version, and on a miss ``GET`` the version's fallback.

Namespaces and versions are limited to ``[A-Za-z0-9_.-]`` so they never contain the ``:``
separator, braces (hash tags) or glob characters (``SCAN MATCH`` patterns).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, DataError

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SCORE_DIGITS = 6
# One encoder: json.dumps with non-default options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is a valid namespace or version name; else raise ``ConfigError``."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"invalid {what} {value!r}: use 1-64 characters from A-Z a-z 0-9 _ . - "
            "(no ':', braces or glob characters, which have a meaning in Redis keys)"
        )
    return value


class Keys:
    """Key names for one namespace (see the module docstring)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = check_name(namespace, "namespace")
        tagged = f"recpipe:{{{namespace}}}"
        self.current = f"{tagged}:current"
        self.versions = f"{tagged}:versions"
        self.cleanup = f"{tagged}:cleanup"
        self.lock = f"{tagged}:lock"
        self.rolled_back = f"{tagged}:rolled_back"
        self._tagged = tagged

    def meta(self, version: str) -> str:
        return f"{self._tagged}:meta:{version}"

    def fallback(self, version: str) -> str:
        return f"{self._tagged}:fallback:{version}"

    def user_prefix(self, version: str) -> str:
        """Prefix of every user key of ``version``; append ``str(user_id)``."""
        return f"recpipe:{self.namespace}:v:{version}:u:"

    def user(self, version: str, user_id: object) -> str:
        return f"{self.user_prefix(version)}{user_id}"

    def user_pattern(self, version: str = "*") -> str:
        """``SCAN MATCH`` pattern of one version's user keys (``*``: every version's)."""
        return f"recpipe:{self.namespace}:v:{version}:u:*"


# Exact doubles 10**0 .. 10**22: a table lookup instead of a power per value.
_POW10 = 10.0 ** np.arange(23)


def round_significant(values: np.ndarray, digits: int = SCORE_DIGITS) -> np.ndarray:
    """Round to ``digits`` significant digits, vectorised (so repr() prints at most that many)."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        decimals = digits - 1 - np.floor(np.log10(np.abs(x)))
    ok = np.isfinite(decimals)  # excludes 0, NaN and infinities, which stay as they are
    if ok.all() and len(x) and decimals.min() >= 0 and decimals.max() <= 22:
        # The common case (scores below 10**digits, not tiny): no masks, no copies.
        scale = _POW10[decimals.astype(np.int64)]
        return np.round(x * scale) / scale
    out = x.copy()
    if not ok.any():
        return out
    v = x[ok]
    d = decimals[ok].astype(np.int64)
    rounded = np.empty_like(v)
    up = d >= 0
    # Powers of ten up to 1e22 are exact doubles, so k / 10**d is the double nearest the decimal.
    scale = _POW10[np.minimum(np.abs(d), 22)]
    rounded[up] = np.round(v[up] * scale[up]) / scale[up]
    rounded[~up] = np.round(v[~up] / scale[~up]) * scale[~up]
    rare = np.flatnonzero(np.abs(d) > 22)  # tiny or huge: exact powers run out; rare
    for i in rare:
        rounded[i] = float(f"{v[i]:.{digits}g}")
    out[ok] = rounded
    return out


def encode(items: Sequence[Any], scores: Sequence[float]) -> str:
    """Compact JSON value of one list (``items`` already Python ints/strs, ``scores`` rounded)."""
    return _ENCODER.encode({"items": items, "scores": scores})


def plain_items(items: Sequence[Any], what: str) -> list[Any]:
    """A small list of raw ids as plain Python ints/strs (numpy scalars converted)."""
    out: list[Any] = []
    for x in items:
        value = x.item() if isinstance(x, np.generic) else x
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise DataError(f"{what} must hold int or str ids, got {value!r} ({type(x).__name__})")
        out.append(value)
    return out


def plain_scores(scores: Sequence[float], what: str) -> list[float]:
    """Finite floats rounded like user lists' scores."""
    arr = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"{what} holds NaN or infinite values; scores must be finite")
    return [float(s) for s in round_significant(arr)] if len(arr) else []
