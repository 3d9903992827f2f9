"""The HTTP lookup API over published lists, and a small Python client."""

from pipeline.serve.app import LookupApp, create_app, serve
from pipeline.serve.client import RecommendationError, RecpipeClient

__all__ = ["LookupApp", "RecommendationError", "RecpipeClient", "create_app", "serve"]
