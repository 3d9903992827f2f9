"""The HTTP lookup API over published lists, and a small Python client."""

from pipeline.serve.app import create_app, serve
from pipeline.serve.client import RecommendationError, RecpipeClient

__all__ = ["RecommendationError", "RecpipeClient", "create_app", "serve"]
