"""Feature engineering: ops fitted as distributed reductions, applied identically to Dask
(training) and pandas (serving) frames, saved as JSON + Parquet.

>>> wf = Workflow((["user_id", "item_id"] >> Categorify(None))   # + binds tighter than >>
...               + (["age"] >> FillMedian(None) >> Normalize(None))
...               + TargetEncoding(["item_id"], target="relevant") + ["relevant"])
>>> wf.fit(ddf).save("features/")          # doctest: +SKIP
>>> Workflow.load("features/").transform(request_frame)   # doctest: +SKIP

The ops live in ``ops/`` (one module each), the statistics they fit in ``stats/``, the engine
that runs them here. Any op in ``ops/`` is importable from this package by its class name.
"""

from typing import Any

from .base import NotFittedError, Op, op_types
from .graph import Node, Selector, Tags, tag
from .ops.bucketize import Bucketize
from .ops.categorify import Categorify
from .ops.categorify_combo import CategorifyCombo
from .ops.clip import Clip
from .ops.difference_lag import DifferenceLag
from .ops.fill import FillMissing
from .ops.fill_median import FillMedian
from .ops.hash_bucket import HashBucket
from .ops.hashed_cross import HashedCross
from .ops.join_groupby import JoinGroupby
from .ops.log_op import LogOp
from .ops.minmax import NormalizeMinMax
from .ops.normalize import Normalize
from .ops.structural import AddTags, Filter, Rename
from .ops.target_encoding import TargetEncoding
from .ops.user_function import UserFunction

# The engine (Dask) loads on first use: reading a workflow file imports the ops' parameter
# models from here, and a second run must see its lock before Dask is imported.
_LAZY = {"Workflow": ".workflow", "FORMAT_VERSION": ".persist"}

__all__ = [
    "AddTags",
    "Filter",
    "Rename",
    "FORMAT_VERSION",
    "Categorify",
    "FillMedian",
    "FillMissing",
    "Node",
    "Selector",
    "Tags",
    "NotFittedError",
    "Normalize",
    "Op",
    "TargetEncoding",
    "Workflow",
    "tag",
    "Bucketize",
    "CategorifyCombo",
    "Clip",
    "DifferenceLag",
    "HashBucket",
    "HashedCross",
    "JoinGroupby",
    "LogOp",
    "NormalizeMinMax",
    "UserFunction",
]


def __getattr__(name: str) -> Any:
    """The engine's names on first use, and an op of ``ops/`` not imported above, by its class
    name (an op added there needs no line in this file)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    for cls in op_types().values():
        if cls.__name__ == name and cls.__module__.startswith(f"{__name__}.ops."):
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
