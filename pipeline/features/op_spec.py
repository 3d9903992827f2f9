"""An op's entry in a workflow file's ``features:`` list, declared in the op's own module.

An op that can be written in a workflow file nests a ``Spec`` model (a subclass of ``OpSpec``)
whose ``op`` field is a one-value ``Literal``, the entry's name:

    class Clip(NumericMapOp):
        class Spec(OpSpec):
            op: Literal["clip"]
            columns: list[str] = Field(min_length=1)
            min_value: float | None = None
            max_value: float | None = None

``spec_ops`` collects them and ``pipeline.config`` validates each entry against its model.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ConfigDict


class OpSpec(BaseModel):
    """One validated ``features:`` entry: unknown keys are refused, the entry is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def op_name(cls) -> str:
        """The entry's ``op:`` name: the one value of the model's ``op`` Literal."""
        field = cls.model_fields.get("op")
        names = get_args(field.annotation) if field is not None else ()
        if len(names) != 1 or not isinstance(names[0], str):
            raise TypeError(f"{cls.__qualname__} must declare op: Literal['<op name>']")
        return names[0]

    def op_params(self) -> dict[str, Any]:
        """The op's constructor arguments: every key of the entry but ``op``."""
        return self.model_dump(exclude={"op"})
