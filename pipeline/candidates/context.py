"""What every partition of users needs for one cutoff, computed once and broadcast: the
statistics as of that cutoff, the candidate settings and the filter rules."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd

from pipeline.candidates.embedding import EmbeddingIndex, load_embedding_index
from pipeline.candidates.generators import NeighbourGraph, neighbour_graph
from pipeline.candidates.rules import FilterRules
from pipeline.config import CandidatesSpec


@dataclass(frozen=True)
class NightContext:
    """What every partition needs, computed once and broadcast: statistics as of ``cutoff``."""

    cutoff: int
    popular: pd.DataFrame
    neighbours: pd.DataFrame | None
    users: pd.DataFrame | None
    items: pd.DataFrame | None
    workflow_dir: str
    candidates: CandidatesSpec
    exclude_seen: bool
    k: int
    seen_window_days: float | None = None
    rules: FilterRules | None = None  # business rules: the nightly lists only
    embedding_dir: str | None = None  # the retrieval model trained on history before cutoff

    def embedding_index(self) -> EmbeddingIndex | None:
        """The retrieval model when the embedding generator is on (loaded once per process)."""
        if self.embedding_dir is None or self.candidates.embedding is None:
            return None
        return load_embedding_index(self.embedding_dir)

    @functools.cached_property
    def neighbour_graph(self) -> NeighbourGraph | None:
        """The neighbours as a sparse matrix, built on first use in each process (a worker
        keeps its scattered context, so once per worker, not once per partition)."""
        return neighbour_graph(self.neighbours) if self.neighbours is not None else None
