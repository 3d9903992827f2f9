"""One pass over a partition of users on the holdout: their candidates are retrieved, filtered
and given their signals once; then every source (the ranker's seeds, the logistic baseline,
every signal baseline) turns them into lists, each scored at both horizons. Retrieval recall per
generator comes from the same candidates. Only sums and the listed items leave the worker.

Users evaluated: those with history before the holdout and a relevant interaction in it (a user
new in the holdout gets the fallback list, whatever the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.candidates.context import NightContext
from pipeline.candidates.filters import pairs_isin
from pipeline.candidates.generators import NO_RANK, RANK_COLUMNS
from pipeline.io import ITEM, TIME, USER, stable_unit
from pipeline.rankers.ranker import load_scorer
from pipeline.rankers.signal import signal_scores
from pipeline.recommend.batch import final_lists
from pipeline.rows.build import candidate_chunks, known_window_users

HORIZONS = ("short", "long")
EVALUATION_SEED = 104_729  # the sample of holdout users is the same every night
MEASURES = ("ndcg", "recall", "map")


@dataclass(frozen=True)
class HoldoutPlan:
    """What the pass computes: sources by name (a model folder, or None for a signal
    baseline), the horizons' ends and the list length ``k`` (metrics at ``k``)."""

    sources: dict[str, str | None]
    short_end: int
    long_end: int
    relevant: str
    k: int
    user_share: float = 1.0  # evaluated users: those whose stable hash falls below it


def holdout_partition(events: pd.DataFrame, ctx: NightContext,
                      plan: HoldoutPlan) -> dict[str, Any]:
    """Metric sums per source and horizon, recall sums per generator, listed items."""
    users = known_window_users(events, ctx.cutoff, plan.long_end, plan.relevant)
    users = users[stable_unit(users, seed=EVALUATION_SEED) < plan.user_share]
    relevant = events[(events[TIME] >= ctx.cutoff) & (events[plan.relevant].to_numpy() > 0)]
    truth = {"long": relevant[relevant[TIME] < plan.long_end],
             "short": relevant[relevant[TIME] < plan.short_end]}
    truth = {h: t.loc[t[USER].isin(users), [USER, ITEM]].drop_duplicates()
             for h, t in truth.items()}
    out: dict[str, Any] = {"users": {h: int(t[USER].nunique()) for h, t in truth.items()},
                           "metrics": {}, "listed": {}, "recall": {}, "candidates": {},
                           "per_user": {}}
    if len(users) == 0:
        return out
    scorers = {name: load_scorer(d) for name, d in plan.sources.items() if d is not None}
    scored: dict[str, list[pd.DataFrame]] = {name: [] for name in plan.sources}
    candidates: list[pd.DataFrame] = []
    for chunk in candidate_chunks(events, ctx, users):
        rows = chunk.rows
        candidates.append(rows[[USER, ITEM, *(c for c in RANK_COLUMNS.values() if c in rows)]])
        for name in plan.sources:
            score = (scorers[name].score(chunk.features) if name in scorers
                     else signal_scores(rows, name))
            lists = final_lists(rows[[USER, ITEM, "source"]].assign(score=score), chunk.users,
                                chunk.history, ctx)
            scored[name].append(lists[lists["rank"] <= plan.k])
    _retrieval(pd.concat(candidates, ignore_index=True), truth["long"], out)
    for name, parts in scored.items():
        top = pd.concat(parts, ignore_index=True)
        per_horizon = {h: per_user_metrics(top, truth[h], plan.k) for h in HORIZONS}
        out["listed"][name] = np.unique(top[ITEM].to_numpy())
        out["metrics"][name] = {h: metric_sums(m) for h, m in per_horizon.items()}
        out["per_user"][name] = per_horizon["long"]["ndcg"].to_numpy()  # paired comparisons
    return out


def _retrieval(rows: pd.DataFrame, truth: pd.DataFrame, out: dict[str, Any]) -> None:
    """Summed per-user recall of each generator's candidates and of all of them (after the
    filter), and how many candidates each proposed."""
    relevant = truth.groupby(USER).size()
    hit = pairs_isin(rows[USER].to_numpy(), rows[ITEM].to_numpy(), truth)
    proposers = {name: rows[column].to_numpy() < NO_RANK for name, column in
                 RANK_COLUMNS.items() if column in rows}
    for name, mine in {**proposers, "merged": np.ones(len(rows), dtype=bool)}.items():
        hits = rows.loc[mine & hit, USER].value_counts().reindex(relevant.index, fill_value=0)
        out["recall"][name] = float((hits / relevant).sum())
        out["candidates"][name] = int(mine.sum())



def per_user_metrics(top: pd.DataFrame, truth: pd.DataFrame, k: int) -> pd.DataFrame:
    """NDCG@k, Recall@k and AP@k of each user of ``truth`` (binary relevance; index: the users,
    sorted) for the lists ``top`` (``user_id, rank, item_id``, ranks <= k); a user without a
    list scores 0."""
    relevant = truth.groupby(USER).size()
    out = pd.DataFrame({m: np.zeros(len(relevant)) for m in MEASURES}, index=relevant.index)
    if len(relevant) == 0 or len(top) == 0:
        return out
    hits = top[pairs_isin(top[USER].to_numpy(), top[ITEM].to_numpy(), truth)]
    hits = hits.sort_values([USER, "rank"], kind="stable")
    ranks = hits["rank"].to_numpy(dtype=np.float64)
    order = hits.groupby(USER, sort=False).cumcount().to_numpy() + 1
    per_user = pd.DataFrame({"dcg": 1.0 / np.log2(ranks + 1.0), "hits": 1.0,
                             "precision": order / ranks},
                            index=hits[USER].to_numpy()).groupby(level=0).sum()
    per_user = per_user.reindex(relevant.index, fill_value=0.0)
    n_rel = relevant.to_numpy()
    gains = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))]
    out["ndcg"] = per_user["dcg"].to_numpy() / gains[np.minimum(n_rel, k)]
    out["recall"] = per_user["hits"].to_numpy() / n_rel
    out["map"] = per_user["precision"].to_numpy() / np.minimum(n_rel, k)
    return out


def metric_sums(per_user: pd.DataFrame) -> dict[str, float]:
    """The per-user metrics summed, with the number of users."""
    return {"users": float(len(per_user)), **{m: float(per_user[m].sum()) for m in MEASURES}}
