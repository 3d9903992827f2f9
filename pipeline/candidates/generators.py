"""Stage 1, retrieve: candidate items per user from several generators, merged, de-duplicated,
each row keeping every generator's rank (``NO_RANK`` where one did not propose it) and which
generators proposed it. Runs on one chunk of one partition of users (pandas)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.candidates.cooccurrence import row_top_n
from pipeline.candidates.filters import pair_keys, split_keys
from pipeline.io import ITEM, TIME, USER

SOURCE_POPULARITY = "popularity"
SOURCE_COOCCURRENCE = "cooccurrence"
SOURCE_REPEAT = "repeat"
SOURCE_EASE = "ease"
SOURCE_EMBEDDING = "embedding"
NO_RANK = 1_000_000  # rank given to a candidate a generator did not propose
RANK_COLUMNS = {SOURCE_POPULARITY: "pop_rank", SOURCE_COOCCURRENCE: "cooc_rank",
                SOURCE_REPEAT: "repeat_rank", SOURCE_EASE: "ease_rank",
                SOURCE_EMBEDDING: "emb_rank"}


def popularity_candidates(users: np.ndarray, popular: pd.DataFrame, n: int) -> pd.DataFrame:
    """Every user gets the ``n`` most popular items: ``(user_id, item_id, pop_rank)``."""
    top = popular.head(n)
    return pd.DataFrame(
        {
            USER: np.repeat(users, len(top)),
            ITEM: np.tile(top[ITEM].to_numpy(), len(users)),
            "pop_rank": np.tile(top["pop_rank"].to_numpy(), len(users)),
        }
    )


@dataclass(frozen=True)
class NeighborGraph:
    """The co-occurrence neighbors as a sparse (item x item) matrix of cosines over ``vocab``
    (sorted item ids, so column order is item id order: the tie-break). The same for every
    partition of a night: built once per worker (``NightContext.neighbor_graph``)."""

    vocab: pd.Index
    matrix: sp.csr_matrix


def neighbor_graph(neighbors: pd.DataFrame) -> NeighborGraph:
    """The sparse graph of ``neighbors`` (rows ``item_id, neighbor_id, cooc_score``)."""
    vocab = pd.Index(np.unique(np.r_[neighbors[ITEM].to_numpy(),
                                     neighbors["neighbor_id"].to_numpy()]))
    matrix = sp.csr_matrix((neighbors["cooc_score"].to_numpy(dtype=np.float64),
                            (vocab.get_indexer(neighbors[ITEM].to_numpy()),
                             vocab.get_indexer(neighbors["neighbor_id"].to_numpy()))),
                           shape=(len(vocab), len(vocab)))
    matrix.sum_duplicates()  # canonical once, here, rather than in every product
    return NeighborGraph(vocab, matrix)


@dataclass(frozen=True, eq=False)
class CooccurrenceScores:
    """Each user's summed cosine to every item that co-occurs with their latest items: a
    sparse ``users x vocab`` matrix, so any candidate's score is one lookup."""

    users: np.ndarray  # sorted user ids of the rows
    vocab: pd.Index
    scores: sp.csr_matrix

    def top_n(self, n: int) -> pd.DataFrame:
        """``(user_id, item_id, cooc_rank)``, at most ``n`` per user, best first (ties: the
        lower item id), positive scores only."""
        row, col, data, rank = row_top_n(self.scores, n)
        keep = data > 0
        return pd.DataFrame({USER: self.users[row[keep]], ITEM: self.vocab.to_numpy()[col[keep]],
                             "cooc_rank": rank[keep].astype(np.int64)})

    def pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The summed cosine of each (user, item) row; 0 where nothing co-occurs."""
        u = pd.Index(self.users).get_indexer(users)
        i = self.vocab.get_indexer(items)
        out = np.zeros(len(users), dtype=np.float32)
        known = (u >= 0) & (i >= 0)
        if known.any():
            out[known] = np.asarray(self.scores[u[known], i[known]]).ravel()
        return out


def cooccurrence_scores(history: pd.DataFrame, graph: NeighborGraph,
                        recent_items: int) -> CooccurrenceScores:
    """Scores of the items that co-occur with each user's latest ``recent_items``: one sparse
    product (users x seed items) @ (items x neighbors) sums the cosines in C."""
    latest = history.sort_values([USER, TIME], ascending=[True, False], kind="stable")
    latest = latest.drop_duplicates([USER, ITEM]).groupby(USER, sort=False).head(recent_items)
    seed = graph.vocab.get_indexer(latest[ITEM].to_numpy())
    known = seed >= 0
    users, user_codes = np.unique(latest[USER].to_numpy()[known], return_inverse=True)
    seeds = sp.csr_matrix((np.ones(int(known.sum())), (user_codes, seed[known])),
                          shape=(len(users), len(graph.vocab)))
    return CooccurrenceScores(users, graph.vocab, (seeds @ graph.matrix).tocsr())


def repeat_candidates(history: pd.DataFrame, n: int) -> pd.DataFrame:
    """The user's own most frequent past items (ties: most recent first, then item id):
    ``(user_id, item_id, repeat_rank)``, at most ``n`` per user. The strongest candidates where
    people come back (groceries, music)."""
    stats = history.groupby([USER, ITEM], sort=False).agg(_count=(TIME, "size"),
                                                          _last=(TIME, "max")).reset_index()
    stats = stats.sort_values([USER, "_count", "_last", ITEM],
                              ascending=[True, False, False, True], kind="stable")
    stats["repeat_rank"] = stats.groupby(USER, sort=False).cumcount() + 1
    return stats.loc[stats["repeat_rank"] <= n, [USER, ITEM, "repeat_rank"]].reset_index(drop=True)


def merge_candidates(generators: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Outer-merge the generators' ``(user_id, item_id, <rank>)`` frames on (user, item): one
    row per pair, sorted by (user, item), with every generator's rank column (``NO_RANK``
    where it did not propose the item) and ``source``, the names of those that did."""
    fast = _merge_by_keys(generators)
    if fast is not None:
        return fast
    keys = pd.concat([f[[USER, ITEM]] for f in generators.values()], ignore_index=True)
    merged = keys.drop_duplicates().sort_values([USER, ITEM], kind="stable")
    merged = merged.reset_index(drop=True)
    proposed = []
    for name, frame in generators.items():
        column = RANK_COLUMNS[name]
        ranks = merged.merge(frame[[USER, ITEM, column]], on=[USER, ITEM], how="left")[column]
        merged[column] = ranks.fillna(NO_RANK).to_numpy(dtype=np.int64)
        proposed.append((name, ranks.notna().to_numpy()))
    merged["source"] = source_column(proposed)
    return merged


def _merge_by_keys(generators: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """The outer merge as one ``np.unique`` over int64 (user, item) keys (None when the ids are
    not small integers): no hash join, no per-column reindexing."""
    frames = list(generators.values())
    keys = [pair_keys(f[USER].to_numpy(), f[ITEM].to_numpy()) for f in frames]
    if any(k is None for k in keys):
        return None
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    bounds = np.cumsum([0, *map(len, frames)])
    users, items = split_keys(unique)
    first = frames[0]
    columns: dict[str, object] = {USER: users.astype(first[USER].dtype),
                                  ITEM: items.astype(first[ITEM].dtype)}
    proposed = []
    for i, (name, frame) in enumerate(generators.items()):
        at = inverse[bounds[i]:bounds[i + 1]]
        ranks = np.full(len(unique), NO_RANK, dtype=np.int64)
        ranks[at] = frame[RANK_COLUMNS[name]].to_numpy()
        columns[RANK_COLUMNS[name]] = ranks
        flags = np.zeros(len(unique), dtype=bool)
        flags[at] = True
        proposed.append((name, flags))
    return pd.DataFrame({**columns, "source": source_column(proposed)})


def source_column(proposed: list[tuple[str, np.ndarray]]) -> pd.Categorical:
    """Per row, the names of the generators whose flag is set, joined by ``+``: a categorical
    over the 2^g flag combinations, so a million candidate rows carry one small code each (the
    listed rows become plain strings in ``topk``)."""
    code = np.zeros(len(proposed[0][1]), dtype=np.int16)
    for bit, (_, flags) in enumerate(proposed):
        code |= flags.astype(np.int16) << bit
    names = ["+".join(n for b, (n, _) in enumerate(proposed) if c >> b & 1)
             for c in range(2 ** len(proposed))]
    names[0] = "none"  # no generator: never a candidate row, but categories must be unique
    return pd.Categorical.from_codes(code, categories=names)
