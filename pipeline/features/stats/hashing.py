"""Stable hashes of column groups into a fixed range of bucket indices (HashBucket, HashedCross).

Layout, as Categorify's: 0 = padding, 1 = null (any value of the group null), then ``2 ..
2 + num_buckets - 1``. Hashes come from the canonical values of the kind each column was fitted
as (``keys.canonical``), so a serving frame that spells a column differently (int vs whole
floats, ``object`` vs ``str``) lands in the same bucket, and every process agrees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .group_keys import group_keys
from .keys import KeyKind, key_kind

NULL_INDEX = 1
FIRST_BUCKET = 2


def kinds_for(
    frame: pd.DataFrame, columns: Sequence[str], kinds: Mapping[str, KeyKind], where: str
) -> list[KeyKind]:
    """Fitted kinds, or (an op used without fit) the frame's own."""
    return [kinds[c] if c in kinds else key_kind(frame[c].dtype, c, where) for c in columns]


def hash_bucket(
    frame: pd.DataFrame,
    columns: Sequence[str],
    kinds: Sequence[KeyKind],
    num_buckets: int,
    where: str,
) -> np.ndarray:
    """int64 bucket of each row's value(s); always hashed (even single numeric columns)."""
    gk = group_keys(frame, columns, kinds, where)
    key = gk.key
    if len(columns) == 1 and kinds[0] != "str":
        key = pd.util.hash_array(key, categorize=False)  # raw bits -> a well-mixed hash
    out = np.full(len(frame), NULL_INDEX, dtype=np.int64)
    out[gk.ok] = FIRST_BUCKET + (key % np.uint64(num_buckets)).astype(np.int64)
    return out
