"""Rows of a column group -> one uint64 key per row, vectorised (no pandas groupby on objects).

A single numeric column is its own key: its 64 bits through a bijection (exact, no collisions)
that spreads consecutive ids over the whole key space, as hashes are. Strings and multi-column
groups are hashed with pandas' stable ``hash_array`` and combined; the raw values travel with
every statistic so a hash collision is detected (and reported), never silently merged. Keys are
only compared for equality, sorted and cut into even key ranges (``key_range_bounds``), never
interpreted.

A statistic may ask for packed pairs (``pack_pairs``): a row of two integer columns whose values
both lie in ``[0, 2**32)`` (user and item ids) is keyed by both values in one uint64 through the
same bijection, exactly, and its values can be read back from the key (``unpack_pair``); other
rows of the group are hashed, as any group's are. The choice is per row, so every partition keys
a pair alike, and a statistic whose rows all packed need not carry its values
(``GroupKeys.packed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import DataError

from ..backend import hash_values
from .keys import KeyKind, canonical, empty_keys


@dataclass(frozen=True)
class GroupKeys:
    """``ok``: rows whose group values are all non-null; for those rows, ``key`` and ``values``.
    ``packed``: every key is a packed pair (see the module docstring)."""

    ok: np.ndarray
    key: np.ndarray
    values: tuple[np.ndarray, ...]
    packed: bool = False


def is_exact(kinds: Sequence[KeyKind]) -> bool:
    """Whether a group's keys are its raw bits (one numeric column) rather than a hash."""
    return len(kinds) == 1 and kinds[0] != "str"


def raw_values(index: pd.Index, kind: KeyKind) -> np.ndarray:
    """Canonical values as a plain numpy array (object of ``str`` for strings)."""
    if kind == "str":
        return index.to_numpy(dtype=object)
    return np.asarray(index.to_numpy())


def key_of(values: Sequence[np.ndarray], kinds: Sequence[KeyKind]) -> np.ndarray:
    """uint64 key of each row from canonical value arrays (one per column of the group)."""
    if is_exact(kinds):
        v = values[0]
        if kinds[0] == "float":
            return _spread((v + 0.0).view(np.uint64))  # -0.0 == 0.0
        return _spread(_bits(v))
    return _hashed(values)


def packed_keys(values: Sequence[np.ndarray], kinds: Sequence[KeyKind]) -> tuple[np.ndarray, bool]:
    """``key_of``, except that rows of an integer pair whose values both lie in ``[0, 2**32)``
    are keyed by the packed pair (see the module docstring); and whether every row was."""
    fits = packable_rows(values, kinds)
    if fits is None:
        return key_of(values, kinds), False
    key = _spread((_bits(values[0]) << _HALF) | _bits(values[1])) ^ _PAIR_SALT
    packed = bool(fits.all())
    if not packed:
        rest = ~fits
        key[rest] = _hashed([v[rest] for v in values])
    return key, packed


_HALF = np.uint64(32)
_LOW_MASK = np.uint64(0xFFFFFFFF)
_PAIR_SALT = np.uint64(0x9E3779B97F4A7C15)
"""Packed keys are xored with this after the bijection. pandas' hash of an integer is the same
SplitMix64 finaliser and hashes 0 to 0, so a hashed pair ``(0, b)`` would be keyed
``_spread(b)``, exactly the packed key of the pair whose 64 bits are ``b`` (``(1, 0)`` and
``(0, 2**32)`` would collide); xored, such a coincidence is as unlikely as any hash collision."""


def packable_rows(values: Sequence[np.ndarray], kinds: Sequence[KeyKind]) -> np.ndarray | None:
    """For an integer pair, the rows whose two values both lie in ``[0, 2**32)`` (packed by
    ``packed_keys``); None for any other group."""
    if tuple(kinds) != ("int", "int"):
        return None
    a, b = (_bits(v) for v in values)
    return ((a | b) >> _HALF) == 0  # negative values wrap to huge ones: not packable


def _bits(values: np.ndarray) -> np.ndarray:
    return values.astype(np.int64, copy=False).view(np.uint64)


def unpack_pair(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two int64 values of packed-pair keys (inverse of ``packed_keys``)."""
    bits = _unspread(key ^ _PAIR_SALT)
    return (bits >> _HALF).astype(np.int64), (bits & _LOW_MASK).astype(np.int64)


def _hashed(values: Sequence[np.ndarray]) -> np.ndarray:
    key = None
    for v in values:
        h = hash_values(v)
        key = h if key is None else hash_values(key) ^ h
    assert key is not None
    return key


_MIX_1, _MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_UNMIX_1, _UNMIX_2 = np.uint64(0x96DE1B173F119089), np.uint64(0x319642B2D24D8EC3)  # inverses
"""SplitMix64's multipliers and their inverses modulo 2**64."""


def _spread(bits: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, a bijection of uint64: ids 0, 1, 2, ... land all over the key
    space, so even key ranges hold even shares of the keys (see ``key_range_bounds``)."""
    z = bits ^ (bits >> np.uint64(30))
    z *= _MIX_1
    z ^= z >> np.uint64(27)
    z *= _MIX_2
    z ^= z >> np.uint64(31)
    return z


def _unspread(key: np.ndarray) -> np.ndarray:
    """Inverse of ``_spread``: each xor-shift undone by xoring in the shifts it repeats, each
    multiplication by the multiplier's inverse."""
    z = key ^ (key >> np.uint64(31)) ^ (key >> np.uint64(62))
    z *= _UNMIX_2
    z ^= (z >> np.uint64(27)) ^ (z >> np.uint64(54))
    z *= _UNMIX_1
    return z ^ (z >> np.uint64(30)) ^ (z >> np.uint64(60))


def key_range_bounds(buckets: int) -> np.ndarray:
    """The ``buckets - 1`` uint64 cut points of the key space into even ranges."""
    step = (1 << 64) // buckets
    return np.array([step * b for b in range(1, buckets)], dtype=np.uint64)


def group_keys(
    frame: pd.DataFrame, columns: Sequence[str], kinds: Sequence[KeyKind], where: str,
    pack_pairs: bool = False,
) -> GroupKeys:
    """Keys of ``frame``'s rows for the group ``columns`` fitted as ``kinds`` (``pack_pairs``:
    see ``packed_keys``)."""
    parts = [canonical(frame[c], k, where) for c, k in zip(columns, kinds, strict=True)]
    ok = np.ones(len(frame), dtype=bool)
    for null, _ in parts:
        ok &= ~null
    values = tuple(
        raw_values(idx[ok[~null]] if not ok.all() else idx, k)
        for (null, idx), k in zip(parts, kinds, strict=True)
    )
    if pack_pairs:
        key, packed = packed_keys(values, kinds)
        return GroupKeys(ok, key, values, packed)
    return GroupKeys(ok, key_of(values, kinds), values)


def empty_values(kinds: Sequence[KeyKind]) -> tuple[np.ndarray, ...]:
    return tuple(raw_values(empty_keys(k), k) for k in kinds)


def check_collisions(
    columns: Sequence[str], a: Sequence[np.ndarray], b: Sequence[np.ndarray], where: str
) -> None:
    """Rows of ``a`` and ``b`` share a key; they must also share their values."""
    for c, x, y in zip(columns, a, b, strict=True):
        differ = x != y
        if np.any(differ):
            i = int(np.flatnonzero(differ)[0])
            raise DataError(
                f"{where}: 64-bit key collision between values {x[i]!r} and {y[i]!r} of column "
                f"{c!r}; encode this group through Categorify first (integer keys never collide)"
            )
