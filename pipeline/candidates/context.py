"""What every partition of users needs for one cutoff, computed once and broadcast: the
statistics and models fitted on the history before that cutoff, the candidate settings and the
filter rules. Nothing in it has seen an event at or after the cutoff."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd

from pipeline.candidates.ease import EaseModel
from pipeline.candidates.embedding import EmbeddingIndex, load_embedding_index
from pipeline.candidates.generators import NeighborGraph, neighbor_graph
from pipeline.candidates.rules import FilterRules
from pipeline.config import CandidatesSpec


@dataclass(frozen=True, eq=False)
class NightContext:
    """Statistics as of ``cutoff``; ``exclude_seen`` is the filter's resolved setting."""

    cutoff: int
    popular: pd.DataFrame
    neighbors: pd.DataFrame | None
    users: pd.DataFrame | None
    items: pd.DataFrame | None
    workflow_dir: str
    candidates: CandidatesSpec
    exclude_seen: bool
    k: int
    seen_window_days: float | None = None
    rules: FilterRules | None = None  # business rules: the nightly lists only
    embedding_dir: str | None = None  # the retrieval model trained on history before cutoff
    ease: EaseModel | None = None

    def embedding_index(self) -> EmbeddingIndex | None:
        """The retrieval model when the embedding generator is on (loaded once per process)."""
        if self.embedding_dir is None or self.candidates.embedding is None:
            return None
        return load_embedding_index(self.embedding_dir)

    @functools.cached_property
    def neighbor_graph(self) -> NeighborGraph | None:
        """The neighbors as a sparse matrix, built on first use in each process (a worker
        keeps its scattered context, so once per worker, not once per partition)."""
        if self.neighbors is None or len(self.neighbors) == 0:
            return None
        return neighbor_graph(self.neighbors)

    @property
    def repeat_on(self) -> bool:
        """Whether the repeat generator can add anything: not when every seen item is
        filtered out again."""
        return self.candidates.repeat is not None and not (
            self.exclude_seen and self.seen_window_days is None)
