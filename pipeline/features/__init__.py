"""Feature engineering: ops fitted as distributed reductions, applied identically to Dask
(training) and pandas (serving) frames, saved as JSON + Parquet.

>>> wf = Workflow([Categorify(["user_id", "item_id"]), Normalize(["age"]),
...                TargetEncoding(["item_id"], target="relevant")])
>>> wf.fit(ddf).save("features/")          # doctest: +SKIP
>>> Workflow.load("features/").transform(request_frame)   # doctest: +SKIP
"""

from .base import NotFittedError, Op
from .categorify import Categorify
from .fill import FillMissing
from .normalize import Normalize
from .persist import FORMAT_VERSION
from .target_encoding import TargetEncoding
from .workflow import Workflow

__all__ = [
    "FORMAT_VERSION",
    "Categorify",
    "FillMissing",
    "NotFittedError",
    "Normalize",
    "Op",
    "TargetEncoding",
    "Workflow",
]
