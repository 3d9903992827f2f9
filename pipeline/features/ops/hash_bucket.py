"""HashBucket: categorical columns -> a stable hash bucket index, in place, with no vocabulary.

For ids too many or too new to keep a vocabulary of; layout and hashing in ``hashing``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from ..base import InPlaceOp, column_list
from ..op_spec import OpSpec
from ..stats.keys import KeyKind
from .shared.hashed_groups import HashedGroupsMixin, check_buckets


class HashBucket(HashedGroupsMixin, InPlaceOp):
    """``2 + hash(value) % num_buckets``; nulls -> 1. Learns only each column's key kind.

    >>> frame = pd.DataFrame({"session": ["s1", "s2", None]})
    >>> hashed = ["session"] >> HashBucket(None, num_buckets=10)
    >>> Workflow(hashed).fit(frame).transform(frame)["session"].tolist()  # null: 1
    [11, 4, 1]
    """

    type_name = "HashBucket"

    class Spec(OpSpec):
        op: Literal["hash_bucket"]
        columns: list[str] = Field(min_length=1)
        num_buckets: int = Field(ge=1)

    def __init__(self, columns: str | Sequence[str] | None, num_buckets: int) -> None:
        self.columns = column_list(columns, "HashBucket")
        self.num_buckets = check_buckets(num_buckets, "HashBucket")
        self.kinds_: dict[str, KeyKind] = {}

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "num_buckets": self.num_buckets}

    def hashed_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(c, (c,)) for c in self.columns]
