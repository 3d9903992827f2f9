"""FillMissing: replace nulls with a constant, or with each column's fitted mean."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pydantic import Field

from pipeline.errors import ConfigError, DataError

from ..base import ColumnSchema, PartitionContext, column_list
from ..op_spec import OpSpec
from ..stats.keys import is_text_dtype
from ..stats.moments import Moments
from .shared.column_checks import require_numeric
from .shared.column_stats import ColumnStatsOp


class FillMissing(ColumnStatsOp):
    """Fill nulls in place. ``value=None`` learns the mean of each column (numeric only).

    The column keeps its dtype, except an integer column filled with a non-integer mean, which
    becomes float64 (deterministically, from the dtype alone, so partitions agree).

    >>> frame = pd.DataFrame({"price": [1.0, None, 5.0]})
    >>> mean_filled = ["price"] >> FillMissing(None, value=None)  # the default fills 0.0
    >>> Workflow(mean_filled).fit(frame).transform(frame)["price"].tolist()
    [1.0, 3.0, 5.0]
    """

    type_name = "FillMissing"
    fills_nulls = True
    statistic = Moments
    table_name = "moments"

    class Spec(OpSpec):
        op: Literal["fill_missing"]
        columns: list[str] = Field(min_length=1)
        value: float | None = None

    def __init__(self, columns: str | Sequence[str], value: float | int | str | None = 0.0) -> None:
        self.columns = column_list(columns, "FillMissing")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float | str)
        ):
            raise ConfigError(
                f"FillMissing: value must be a number, a string or None, got {value!r}"
            )
        if isinstance(value, float) and not np.isfinite(value):
            raise ConfigError(f"FillMissing: value must be finite, got {value!r}")
        self.value = value
        self.stats_: Moments | None = None

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "value": self.value}

    @property
    def means_(self) -> Moments | None:
        """The fitted moments (``stats_``), whose means fill the nulls when ``value`` is None."""
        return self.stats_

    @property
    def stateful(self) -> bool:
        return self.value is None

    @property
    def fitted(self) -> bool:
        return self.value is not None or self.stats_ is not None

    def prepare(self, dtypes: Mapping[str, Any]) -> None:
        if self.value is None or isinstance(self.value, int | float):
            require_numeric(dtypes, self.columns, self._where())
        else:
            for c in self.columns:
                if not is_text_dtype(dtypes[c]):
                    raise DataError(
                        f"{self._where()}: column {c!r} has dtype {dtypes[c]}; a string fill "
                        "value needs a string column"
                    )

    def fill_values(self) -> dict[str, float | int | str]:
        """The value each column's nulls become."""
        if self.value is not None:
            return dict.fromkeys(self.columns, self.value)
        return {c: float(m) for c, m in zip(self.columns, self._fitted_stats().mean, strict=True)}

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        return {c: fill_column(frame[c], value) for c, value in self.fill_values().items()}

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": [], "cardinality": None}

    def save_state(self) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
        if self.value is not None:
            return {}, {}
        return super().save_state()

    def load_state(self, state: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> None:
        if self.value is None:
            super().load_state(state, tables)


def fill_column(series: pd.Series, value: float | int | str) -> Any:
    """``series`` with nulls replaced by ``value``; its dtype kept, except that an integer column
    filled with a non-integer number becomes float64 (decided from the dtype and value alone,
    so every partition agrees)."""
    numeric = ptypes.is_integer_dtype(series.dtype)
    if numeric and isinstance(value, float) and not value.is_integer():
        series = series.astype(np.float64)
    return series.fillna(value).array
