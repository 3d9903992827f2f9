"""The base of stateless in-place ops over numeric columns (Clip, LogOp, Bucketize)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...base import InPlaceOp
from .column_checks import require_numeric


class NumericMapOp(InPlaceOp):
    """A stateless in-place op over numeric columns (Clip, LogOp, Bucketize): it learns nothing,
    so ``fit`` only checks, before any data is read, that every column it maps is numeric."""

    @property
    def stateful(self) -> bool:
        return False

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        require_numeric(dtypes, self.columns, self._where())
