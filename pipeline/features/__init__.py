"""Feature engineering: ops fitted as distributed reductions, applied identically to Dask
(training) and pandas (serving) frames, saved as JSON + Parquet.

>>> wf = Workflow((["user_id", "item_id"] >> Categorify(None))   # + binds tighter than >>
...               + (["age"] >> FillMedian(None) >> Normalize(None))
...               + TargetEncoding(["item_id"], target="relevant") + ["relevant"])
>>> wf.fit(ddf).save("features/")          # doctest: +SKIP
>>> Workflow.load("features/").transform(request_frame)   # doctest: +SKIP
"""

from .base import NotFittedError, Op
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
from .persist import FORMAT_VERSION
from .workflow import Workflow

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
