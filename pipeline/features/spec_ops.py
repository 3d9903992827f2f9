"""Workflow-file op entries (``pipeline.config``'s pydantic models) -> feature ops.

One table maps each ``op:`` name to its class; parameters pass through by name, so a new op
needs a config model and a row here, not a new branch in the runner.
"""

from __future__ import annotations

from typing import Any

from .base import Op
from .bucketize import Bucketize
from .categorify import Categorify
from .categorify_combo import CategorifyCombo
from .clip import Clip
from .difference_lag import DifferenceLag
from .fill import FillMissing
from .fill_median import FillMedian
from .hash_bucket import HashBucket
from .hashed_cross import HashedCross
from .join_groupby import JoinGroupby
from .log_op import LogOp
from .minmax import NormalizeMinMax
from .normalize import Normalize
from .target_encoding import TargetEncoding
from .user_function import UserFunction

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
