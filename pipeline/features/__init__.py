"""Feature engineering: ops fitted as distributed reductions, applied identically to Dask
(training) and pandas (serving) frames, saved as JSON + Parquet.

>>> wf = Workflow((["user_id", "item_id"] >> Categorify(None))   # + binds tighter than >>
...               + (["age"] >> FillMedian(None) >> Normalize(None))
...               + TargetEncoding(["item_id"], target="relevant") + ["relevant"])
>>> wf.fit(ddf).save("features/")          # doctest: +SKIP
>>> Workflow.load("features/").transform(request_frame)   # doctest: +SKIP
"""

from .base import NotFittedError, Op
from .bucketize import Bucketize
from .categorify import Categorify
from .categorify_combo import CategorifyCombo
from .clip import Clip
from .difference_lag import DifferenceLag
from .fill import FillMissing
from .fill_median import FillMedian
from .graph import Node, Selector, Tags, tag
from .hash_bucket import HashBucket
from .hashed_cross import HashedCross
from .join_groupby import JoinGroupby
from .log_op import LogOp
from .minmax import NormalizeMinMax
from .normalize import Normalize
from .persist import FORMAT_VERSION
from .structural import AddTags, Filter, Rename
from .target_encoding import TargetEncoding
from .user_function import UserFunction
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
