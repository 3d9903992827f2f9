"""The feature ops, one module each: the place to start reading (``categorify`` first).

Every op subclasses ``pipeline.features.base.Op``; what several ops share lives in ``shared/``,
the statistics they fit and merge in ``pipeline.features.stats``.
"""
