"""Encode one partition's lists as the stored JSON values, vectorised with pyarrow.

Why: encoding user by user with ``json`` runs Python for every user, a large share of a publish.
Here the ids and scores are turned into text by Arrow kernels, joined per user with
``binary_join`` over list offsets, and wrapped in ``{"items":[...],"scores":[...]}`` by
``binary_join_element_wise``: a handful of C++ passes over the partition, no Python per row.

The bytes are exactly what ``keys.encode`` (``json`` with compact separators) writes, because the
API and apps read them: scores are ``repr`` of the rounded double. Arrow's float-to-text gives the
same digits for 1e-4 <= |x| < 1e10 (plus ``.0`` on integral values); outside that range the few
values are printed by Python's ``repr``. String ids are quoted as-is when they are printable ASCII
without quotes or backslashes, else escaped by ``json`` (``ensure_ascii``, which also escapes DEL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import DataError
from pipeline.publish.keys import round_significant

# What ``json`` (``ensure_ascii``) escapes: anything but printable ASCII, plus '"' and '\'.
_NEEDS_ESCAPE = r"[^\x20-\x21\x23-\x5b\x5d-\x7e]"
_ENCODER = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True)
class EncodedLists:
    """One partition, grouped by user: ``users`` (text, as in the key) and ``values`` (JSON)."""

    users: pa.StringArray
    values: pa.StringArray
    k: int  # the longest list

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class GroupedLists:
    """One partition grouped by user, ready to encode a slice of users at a time: user ``i``'s
    rows are ``items[offsets[i]:offsets[i + 1]]`` (and ``scores``), in rank order."""

    users: pa.StringArray
    offsets: np.ndarray
    items: pa.Array  # int or string ids, checked once for the whole partition
    scores: np.ndarray  # rounded
    k: int

    def __len__(self) -> int:
        return len(self.users)


def _as_string(array: pa.Array) -> pa.StringArray:
    return array.cast(pa.string()) if array.type != pa.string() else array


def _id_array(values: Any, column: str) -> pa.Array:
    """Raw ids as an Arrow integer or string array (a clear error for anything else)."""
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"column {column!r} mixes ids of different types: {exc}") from exc
    kind = array.type
    if not (
        pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
    ):
        raise DataError(f"column {column!r} holds {kind} values; ids must be int or str")
    return array


def _json_ids(values: Any, column: str) -> pa.StringArray:
    """Ids as JSON literals: integers as they are, strings quoted (escaped where needed)."""
    array = values if isinstance(values, pa.Array) else _id_array(values, column)
    text = _as_string(array)
    if pa.types.is_integer(array.type):
        return text
    quoted = pc.binary_join_element_wise('"', text, '"', "")
    needs = pc.match_substring_regex(text, _NEEDS_ESCAPE)
    if pc.any(needs).as_py():
        escaped = [_ENCODER.encode(s) for s in text.filter(needs).to_pylist()]
        quoted = pc.replace_with_mask(quoted, needs, pa.array(escaped, pa.string()))
    return quoted


def _json_scores(scores: np.ndarray) -> pa.StringArray:
    """Rounded scores as Python's ``repr`` writes them (what ``json`` stores)."""
    text = pc.cast(pa.array(scores), pa.string())
    magnitude = np.abs(scores)
    # Arrow prints integral values without ".0" and switches to exponents at other bounds than
    # repr; those (usually few) values are printed by repr itself.
    special = (magnitude < 1e-4) | (magnitude >= 1e10) | (scores == np.floor(scores))
    if special.any():
        printed = [repr(x) for x in scores[special].tolist()]
        text = pc.replace_with_mask(text, pa.array(special), pa.array(printed, pa.string()))
    return text


def _rank_order(codes: np.ndarray, rank: np.ndarray) -> np.ndarray | None:
    """Row order that groups users (by code) in rank order; None when rows already are."""
    n = len(codes)
    if n < 2:
        return None
    same_user = codes[1:] == codes[:-1]
    grouped = (codes[1:] >= codes[:-1]).all() and (
        rank[1:][same_user] >= rank[:-1][same_user]
    ).all()
    return None if grouped else np.lexsort((rank, codes))


def group_partition(part: pd.DataFrame) -> GroupedLists:
    """Group ``part`` (columns user_id, rank, item_id, score) by user, in rank order.

    Users come out in order of first appearance; each user's rows are sorted by rank (stable).
    """
    codes, uniques = pd.factorize(part["user_id"], sort=False)
    counts = np.bincount(codes, minlength=len(uniques))
    offsets = np.zeros(len(uniques) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    order = _rank_order(codes, part["rank"].to_numpy())
    items = part["item_id"].to_numpy()
    scores = part["score"].to_numpy(dtype=np.float64)
    if order is not None:
        items, scores = items[order], scores[order]
    users = _as_string(_id_array(np.asarray(uniques), "user_id"))
    return GroupedLists(users=users, offsets=offsets, items=_id_array(items, "item_id"),
                        scores=round_significant(scores), k=int(counts.max(initial=0)))


def encode_users(grouped: GroupedLists, lo: int, hi: int) -> pa.StringArray:
    """The JSON values of users ``lo`` to ``hi - 1`` of ``grouped``."""
    first, last = int(grouped.offsets[lo]), int(grouped.offsets[hi])
    item_text = _json_ids(grouped.items[first:last], "item_id")
    score_text = _json_scores(grouped.scores[first:last])
    offsets = grouped.offsets[lo : hi + 1] - first
    list_offsets = pa.array(offsets, pa.int32() if last - first < 2**31 else pa.int64())
    lists = pa.ListArray if list_offsets.type == pa.int32() else pa.LargeListArray
    values = pc.binary_join_element_wise(
        '{"items":[',
        pc.binary_join(lists.from_arrays(list_offsets, item_text), ","),
        '],"scores":[',
        pc.binary_join(lists.from_arrays(list_offsets, score_text), ","),
        "]}",
        "",
    )
    return _as_string(values)


def encode_partition(part: pd.DataFrame) -> EncodedLists:
    """Group ``part`` by user (``group_partition``) and encode every user's value."""
    grouped = group_partition(part)
    return EncodedLists(grouped.users, encode_users(grouped, 0, len(grouped)), grouped.k)
