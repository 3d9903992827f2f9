"""Workflow-file op entries -> feature ops.

Each op that workflow files may name declares its entry's model (``Spec``, see ``op_spec``) in
its own module; this registry is read off the ops themselves, so adding an op adds no row here
and ``pipeline.config`` builds its ``features:`` validation from ``spec_models``.
"""

from __future__ import annotations

from . import ops  # noqa: F401 - importing the package registers every op
from .base import Op, op_types
from .op_spec import OpSpec


def _declared() -> dict[str, type[Op]]:
    """Every op that declares its own ``Spec``, by the entry's ``op`` name (sorted)."""
    found: dict[str, type[Op]] = {}
    for cls in op_types().values():
        spec = cls.__dict__.get("Spec")
        if spec is None:
            continue
        name = spec.op_name()
        if name in found:
            raise TypeError(f"{found[name].__name__} and {cls.__name__} both declare the "
                            f"workflow-file op {name!r}")
        found[name] = cls
    return dict(sorted(found.items()))


SPEC_OPS: dict[str, type[Op]] = _declared()
"""Each workflow-file ``op:`` name -> its op class."""


def spec_models() -> dict[str, type[OpSpec]]:
    """Each workflow-file ``op:`` name -> the model its entries are validated against."""
    return {name: cls.__dict__["Spec"] for name, cls in SPEC_OPS.items()}


def op_from_spec(spec: OpSpec) -> Op:
    """The op for one validated ``features`` entry."""
    return SPEC_OPS[spec.op_name()](**spec.op_params())
