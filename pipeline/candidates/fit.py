"""Fitting every generator as of one cutoff, on the user-partitioned log: popularity, the
co-occurrence neighbors and EASE^R from one distributed Gram matrix, the optional embedding
model; and tuning EASE^R's λ on a validation window. Only counts and small matrices reach the
client."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline.candidates.bpr import fit_retrieval
from pipeline.candidates.context import NightContext
from pipeline.candidates.cooccurrence import item_gram, top_neighbors
from pipeline.candidates.ease import (
    EaseModel,
    ease_catalogue,
    ease_weights,
    fit_ease,
    history_matrix,
    history_pairs,
    item_spectrum,
    popular_head,
    tune_lambda,
    user_spectrum,
)
from pipeline.candidates.popularity import fit_popularity
from pipeline.candidates.rules import FilterRules
from pipeline.config import CandidatesSpec
from pipeline.io import ITEM, TIME, USER, stable_unit
from pipeline.metrics import block_ndcg

log = logging.getLogger(__name__)

TUNING_USERS = 1000  # validation users λ is tuned on (a stable sample when there are more)


@dataclass(frozen=True)
class CutoffInputs:
    """What a context needs besides the log: settings and per-night artifacts."""

    candidates: CandidatesSpec
    exclude_seen: bool
    seen_window_days: float | None
    k: int
    users: pd.DataFrame | None = None  # side tables, indexed by id
    items: pd.DataFrame | None = None
    ease_lambda: float | None = None


def fit_context(events: dd.DataFrame, cutoff: int, inputs: CutoffInputs, workflow_dir: Path,
                retrieval_dir: Path, rules: FilterRules | None = None) -> NightContext:
    """Every generator fitted on the events before ``cutoff``."""
    spec = inputs.candidates
    popular = fit_popularity(events, cutoff, spec.popularity.recent_days).items
    neighbors, ease = None, None
    if len(popular) and (spec.cooccurrence is not None or spec.ease is not None):
        n_users = int(events.loc[events[TIME] < cutoff, USER].nunique().compute())
        ease_items = (ease_catalogue(popular, n_users, spec.ease.max_items)
                      if spec.ease is not None and inputs.ease_lambda is not None else None)
        item_side = ease_items is not None and n_users >= len(ease_items)
        # One Gram matrix serves both models: over the larger of their catalogues (both are
        # the most popular items), sliced for the smaller.
        sizes = [len(ease_items)] if item_side else []
        if spec.cooccurrence is not None:
            sizes.append(spec.cooccurrence.max_items)
        gram, catalogue = None, None
        if sizes:
            catalogue = popular_head(popular, max(sizes))
            gram = item_gram(events, cutoff, catalogue)
        if spec.cooccurrence is not None:
            cooc = catalogue[:spec.cooccurrence.max_items]
            neighbors = top_neighbors(_sliced(gram, catalogue, cooc), cooc,
                                        spec.cooccurrence.neighbors)
        if ease_items is not None:
            ease = (EaseModel(ease_items, inputs.ease_lambda,
                              weights=ease_weights(_sliced(gram, catalogue, ease_items),
                                                   inputs.ease_lambda))
                    if item_side else _user_side_ease(events, cutoff, ease_items,
                                                      inputs.ease_lambda))
    embedding_dir = None
    if spec.embedding is not None:
        embedding_dir = str(fit_retrieval(events, cutoff, spec.embedding.model_params(),
                                          retrieval_dir, TIME))
    return NightContext(
        cutoff=cutoff, popular=popular, neighbors=neighbors, users=inputs.users,
        items=inputs.items, workflow_dir=str(workflow_dir), candidates=spec,
        exclude_seen=inputs.exclude_seen, k=inputs.k, seen_window_days=inputs.seen_window_days,
        rules=rules, embedding_dir=embedding_dir, ease=ease)


def _sliced(gram: Any, catalogue: pd.Index, items: pd.Index) -> Any:
    """The Gram matrix of ``items`` (a prefix of ``catalogue``) from that of ``catalogue``."""
    n = len(items)
    return gram if n == len(catalogue) else gram.tocsr()[:n][:, :n]


def _user_side_ease(events: dd.DataFrame, cutoff: int, items: pd.Index, lam: float) -> EaseModel:
    pairs = history_pairs(events, cutoff)
    users = np.sort(pairs[USER].unique())
    return fit_ease(history_matrix(pairs, users, items), items, lam)


def tune_ease_lambda(events: dd.DataFrame, start: int, end: int, relevant: str,
                     spec: CandidatesSpec, exclude_seen: bool, k: int,
                     done: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """λ for EASE^R by NDCG@k on the window ``[start, end)``: the relevant items of users with
    history before ``start``, predicted from that history, over the grid of
    ``candidates.ease.lambdas`` (one eigendecomposition for all)."""
    ease = spec.ease
    history = events[events[TIME] < start]
    window = events[(events[TIME] >= start) & (events[TIME] < end)
                    & (events[relevant] > 0)][[USER, ITEM]]
    popular = fit_popularity(events, start, spec.popularity.recent_days).items
    n_users, truth = dask.compute(history[USER].nunique(), window)
    items = ease_catalogue(popular, int(n_users), ease.max_items)
    # λ's validation curve is flat near its best: a sample of users finds it at a fraction of
    # the cost of scoring them all for every λ.
    sampled = np.sort(truth[USER].unique())
    sampled = sampled[np.argsort(stable_unit(sampled), kind="stable")[:TUNING_USERS]]
    truth = truth[truth[USER].isin(sampled)]
    if int(n_users) >= len(items):  # item side: the Gram matrix and the validation users
        mine = history[history[USER].isin(list(truth[USER].unique()))]
        pairs = mine[[USER, ITEM]].map_partitions(pd.DataFrame.drop_duplicates).compute()
        valid = np.sort(pairs[USER].unique())
        factors = item_spectrum(item_gram(events, start, items))
        block = history_matrix(pairs, valid, items)
    else:  # user side: the whole (small) history
        pairs = history_pairs(events, start)
        users = np.sort(pairs[USER].unique())
        valid = np.sort(np.intersect1d(truth[USER].unique(), users))
        x = history_matrix(pairs, users, items)
        factors, block = user_spectrum(x), x[pd.Index(users).get_indexer(valid)]
    truth_block = history_matrix(truth, valid, items)

    def score(scores: np.ndarray) -> float:
        if exclude_seen:
            r, c = block.nonzero()
            scores[r, c] = -np.inf
        return block_ndcg(scores, truth_block, k)

    lam, tried = tune_lambda(factors, block, score, tuple(ease.lambdas), done)
    log.info("EASE^R λ=%g (validation NDCG@%d %.4f over %d users, %d items)", lam, k,
             tried[lam], len(valid), len(items))
    return {"lambda": lam, "validation_users": int(len(valid)), "items": int(len(items)),
            "tried": {f"{a:g}": round(b, 6) for a, b in tried.items()}}
