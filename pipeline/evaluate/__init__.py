"""The evaluate stage: the ranker's lists and every baseline's, scored the same way on the
temporal holdout, with retrieval recall per generator."""
