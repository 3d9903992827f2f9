"""JSON bodies of the lookup API, built from stored values mostly without parsing them.

A stored value is compact JSON ``{"items":[...],"scores":[...]}`` (``pipeline.publish.keys``).
Parsing it and dumping the answer again would run Python over every item and score of every
request, so:

- when ``k`` covers the whole list, the value's inside is spliced into the answer as it is;
- when the items are numbers (no ``"`` among them), the first ``k`` items and scores are cut at
  commas: numbers contain none, and scores are always numbers;
- otherwise (string item ids, a value with ``\\u`` escapes, or an unexpected shape) it is parsed
  and dumped with ``json``.

Every branch yields the bytes ``json.dumps(..., separators=(",", ":"), ensure_ascii=False)`` gives
for the same answer (tests pin this), so clients cannot tell which one ran. The list length is
counted from the scores, so ``k`` larger than a user's list returns the whole list.
"""

from __future__ import annotations

import json
from typing import Any

_HEAD = b'{"items":['
_MIDDLE = b'],"scores":['
_TAIL = b"]}"
_TRUE_END = b',"fallback":true}'
_FALSE_END = b',"fallback":false}'


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, the encoding of every answer."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def list_fields(raw: bytes, k: int) -> bytes:
    """``"items":[...],"scores":[...]`` holding the first ``k`` entries of the stored ``raw``."""
    if raw.startswith(_HEAD) and raw.endswith(_TAIL) and b"\\u" not in raw:
        middle = raw.rfind(_MIDDLE)
        if middle > 0:
            scores = raw[middle + len(_MIDDLE) : -len(_TAIL)]
            if not scores or k > scores.count(b","):  # k >= the list's length
                return raw[1:-1]
            items = raw[len(_HEAD) : middle]
            if b'"' not in items:
                first_items = b",".join(items.split(b",", k)[:k])
                first_scores = b",".join(scores.split(b",", k)[:k])
                return b'"items":[%b],"scores":[%b]' % (first_items, first_scores)
    value = json.loads(raw)
    return dumps({"items": value["items"][:k], "scores": value["scores"][:k]})[1:-1]


def user_id_json(key_id: str | int) -> bytes:
    return str(key_id).encode() if isinstance(key_id, int) else dumps(key_id)


def one_user(key_id: str | int, raw: bytes | None, fallback: bytes, k: int, version: str) -> bytes:
    """The body of ``GET /v1/users/{user_id}/recommendations``."""
    fields = list_fields(fallback if raw is None else raw, k)
    end = _TRUE_END if raw is None else _FALSE_END
    return b'{"user_id":%b,%b,"version":"%b"%b' % (
        user_id_json(key_id), fields, version.encode(), end
    )


def many_users(found: list[tuple[str | int, bytes | None]], fallback: bytes, k: int,
               version: str) -> bytes:
    """The body of ``POST /v1/recommendations``: the version once, then one entry per user id."""
    fallback_fields = list_fields(fallback, k)
    entries = [
        b'{"user_id":%b,%b%b' % (
            user_id_json(key_id),
            fallback_fields if raw is None else list_fields(raw, k),
            _TRUE_END if raw is None else _FALSE_END,
        )
        for key_id, raw in found
    ]
    return b'{"version":"%b","k":%d,"results":[%b]}' % (version.encode(), k, b",".join(entries))
