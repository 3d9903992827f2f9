"""Public datasets fetched at set-up time (never committed: their licences forbid it)."""

from pipeline.datasets.movielens import fetch_movielens_100k

DATASETS = {"movielens-100k": fetch_movielens_100k}

__all__ = ["DATASETS", "fetch_movielens_100k"]
