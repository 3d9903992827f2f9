"""recpipe: a nightly batch recommender system on Dask.

The import name is ``pipeline``; the distribution and console script are ``recpipe``.
"""

__version__ = "0.1.0"
