"""UserFunction: a stateless op that calls a function named by import path, never a lambda.

``UserFunction(["price"], "mypkg.features:log_price", outputs=["log_price"])`` calls
``mypkg.features.log_price(frame)`` with a pandas frame of ``columns`` and expects a frame (or
a dict of arrays) with the ``outputs`` columns, row for row. The workflow saves only the path, so
nothing is pickled and a saved workflow stays readable; the function must be importable wherever
the workflow runs (workers and the serving process) and must give the same result for the same
rows whatever else is in the frame (train/serve parity).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipeline.errors import ConfigError, DataError

from ..base import ColumnSchema, Op, PartitionContext, column_list
from ..op_spec import OpSpec

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def resolve(path: str) -> Callable[[pd.DataFrame], Any]:
    """The function at ``"package.module:function"``; a ConfigError naming what is wrong."""
    if not isinstance(path, str) or not _PATH.match(path):
        raise ConfigError(
            f"UserFunction: function must be an import path 'package.module:function', got "
            f"{path!r} (lambdas and pickled callables are not supported)"
        )
    module_name, name = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"UserFunction: cannot import module {module_name!r}: {exc}") from exc
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"UserFunction: {module_name!r} has no function {name!r}")
    return fn


class UserFunction(Op):
    """Outputs replace the input columns when ``outputs`` is None (or equals ``columns``).

    >>> frame = pd.DataFrame({"price": [0.0, 9.0]})
    >>> logged = ["price"] >> UserFunction(None, "numpy:log1p")  # any importable f(frame)
    >>> Workflow(logged).fit(frame).transform(frame)["price"].tolist()
    [0.0, 2.30258...]
    """

    type_name = "UserFunction"

    class Spec(OpSpec):
        op: Literal["user_function"]
        columns: list[str] = Field(min_length=1)
        function: str = Field(description="import path 'package.module:function'")
        outputs: list[str] | None = None
        tags: list[str] = Field(default_factory=list)

    def __init__(
        self,
        columns: str | Sequence[str] | None,
        function: str,
        outputs: Sequence[str] | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        self.columns = column_list(columns, "UserFunction")
        self.function = function
        self._fn = resolve(function)
        self.outputs = column_list(outputs, "UserFunction") if outputs is not None else None
        self.in_place = self.outputs is None or self.outputs == self.columns  # type: ignore[misc]
        self.tags = [str(t) for t in tags]

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "function": self.function,
                "outputs": None if self.outputs is None else list(self.outputs),
                "tags": list(self.tags)}

    def __getstate__(self) -> dict[str, Any]:
        # Ship the path, not the function object: workers import it themselves.
        return {k: v for k, v in self.__dict__.items() if k != "_fn"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fn = resolve(self.function)

    @property
    def input_columns(self) -> tuple[str, ...]:
        return self.columns

    @property
    def output_columns(self) -> tuple[str, ...]:
        return self.outputs if self.outputs is not None else self.columns

    @property
    def stateful(self) -> bool:
        return False

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        result = self._fn(frame[list(self.columns)].copy())
        where = self._where()
        if isinstance(result, pd.Series) and len(self.output_columns) == 1:
            result = {self.output_columns[0]: result}
        if not isinstance(result, pd.DataFrame | dict):
            raise DataError(f"{where}: the function returned {type(result).__name__}; return a "
                            f"DataFrame (or dict) with columns {list(self.output_columns)!r}")
        missing = [c for c in self.output_columns if c not in result]
        if missing:
            raise DataError(f"{where}: the function's result lacks column(s) {missing!r}")
        out = {}
        for c in self.output_columns:
            values = result[c]
            values = values.array if isinstance(values, pd.Series) else np.asarray(values)
            if len(values) != len(frame):
                raise DataError(f"{where}: column {c!r} has {len(values)} rows for a frame of "
                                f"{len(frame)}; a user function must return one value per row")
            out[c] = values
        return out

    def column_schema(self, column: str) -> ColumnSchema:
        return {"tags": list(self.tags), "cardinality": None}
