"""The feature ops, one module each: the place to start reading (``categorify`` first).

Every op subclasses ``pipeline.features.base.Op``; what several ops share lives in ``shared/``,
the statistics they fit and merge in ``pipeline.features.stats``. Importing this package
imports every module in it, so each op registers itself (``base.op_types``, and its workflow
file entry in ``spec_ops``): adding an op is adding its module here. Each op's docstring shows
it at work (``pd`` is pandas, ``Workflow`` is ``pipeline.features.Workflow``); the tests run
every example.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")
