"""HashedCross: a feature cross of a column group hashed into ``num_buckets``, as a new column.

``HashedCross([["user_id", "item_id"]], 1000)`` adds ``user_id_X_item_id``; layout and hashing
in ``stats.hashing`` (a null in any column of the group -> 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from pipeline.errors import ConfigError

from ..op_spec import OpSpec
from ..stats.keys import KeyKind
from .shared.column_groups import ColumnComboOp
from .shared.hashed_groups import HashedGroupsMixin, check_buckets


class HashedCross(HashedGroupsMixin, ColumnComboOp):
    """One int64 output column per group of two or more columns.

    >>> frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 6, None]})
    >>> cross = HashedCross([["user_id", "item_id"]], num_buckets=100)
    >>> Workflow(cross).fit(frame).transform(frame)["user_id_X_item_id"].tolist()  # null: 1
    [95, 93, 1]
    """

    type_name = "HashedCross"
    separator = "_X_"

    class Spec(OpSpec):
        op: Literal["hashed_cross"]
        columns: list[str] | list[list[str]] = Field(min_length=1)
        num_buckets: int = Field(ge=1)

    def __init__(
        self, columns: Sequence[str | Sequence[str]] | None, num_buckets: int
    ) -> None:
        self.groups = self.groups_of(columns, "HashedCross")
        short = [list(g) for g in self.groups if len(g) < 2]
        if short:
            raise ConfigError(f"HashedCross: a cross needs two or more columns, got {short!r}")
        self.num_buckets = check_buckets(num_buckets, "HashedCross")
        self.kinds_: dict[str, KeyKind] = {}

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "num_buckets": self.num_buckets}

    def hashed_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(self.output_name(g), g) for g in self.groups]
