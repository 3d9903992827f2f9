"""Workflow-file op entries (``pipeline.config``'s pydantic models) -> feature ops.

One table maps each ``op:`` name to its class; parameters pass through by name, so a new op
needs a config model and a row here, not a new branch in the runner.
"""

from __future__ import annotations

from typing import Any

from .base import Op
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
from .ops.target_encoding import TargetEncoding
from .ops.user_function import UserFunction

SPEC_OPS: dict[str, type[Op]] = {
    "categorify": Categorify,
    "categorify_combo": CategorifyCombo,
    "normalize": Normalize,
    "fill_missing": FillMissing,
    "target_encoding": TargetEncoding,
    "fill_median": FillMedian,
    "normalize_minmax": NormalizeMinMax,
    "log": LogOp,
    "clip": Clip,
    "bucketize": Bucketize,
    "hash_bucket": HashBucket,
    "hashed_cross": HashedCross,
    "join_groupby": JoinGroupby,
    "difference_lag": DifferenceLag,
    "user_function": UserFunction,
}


def op_from_spec(spec: Any) -> Op:
    """The op for one validated ``features`` entry (a pydantic model with an ``op`` field)."""
    params = spec.model_dump(exclude={"op"})
    if spec.op == "difference_lag":
        params["partition_col"] = params.pop("columns")[0]
    return SPEC_OPS[spec.op](**params)
