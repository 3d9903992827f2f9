"""Stage 1, retrieve: candidate items per user from several generators, merged, de-duplicated,
each row keeping which generator(s) proposed it. Runs on one partition of users (pandas)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.candidates.filters import pair_keys, split_keys
from pipeline.candidates.sorting import lexsort
from pipeline.io import ITEM, TIME, USER

SOURCE_POPULARITY = "popularity"
SOURCE_COOCCURRENCE = "cooccurrence"
SOURCE_REPEAT = "repeat"
SOURCE_EMBEDDING = "embedding"
NO_RANK = 1_000_000  # rank given to a candidate a generator did not propose


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
class NeighbourGraph:
    """The co-occurrence neighbours as a sparse (item x item) matrix of cosines over ``vocab``
    (sorted item ids, so column order is item id order: the tie-break). The same for every
    partition of a night: built once per worker (``NightContext.neighbour_graph``)."""

    vocab: pd.Index
    matrix: sp.csr_matrix


def neighbour_graph(neighbours: pd.DataFrame) -> NeighbourGraph | None:
    """The sparse graph of ``neighbours``; None when the ids cannot index it (text or mixed)."""
    vocab = pd.Index(np.unique(np.r_[neighbours[ITEM].to_numpy(),
                                     neighbours["neighbor_id"].to_numpy()]))
    if not vocab.is_unique or vocab.dtype == object:
        return None
    matrix = sp.csr_matrix((neighbours["cooc_score"].to_numpy(dtype=np.float64),
                            (vocab.get_indexer(neighbours[ITEM].to_numpy()),
                             vocab.get_indexer(neighbours["neighbor_id"].to_numpy()))),
                           shape=(len(vocab), len(vocab)))
    matrix.sum_duplicates()  # canonical once, here, rather than in every product
    return NeighbourGraph(vocab, matrix)


_BUILD = "build"  # ``graph`` default: build it here from ``neighbours``


def cooccurrence_candidates(
    history: pd.DataFrame, neighbours: pd.DataFrame, recent_items: int, n: int,
    graph: NeighbourGraph | None | str = _BUILD,
) -> pd.DataFrame:
    """Items that co-occur with the user's latest ``recent_items``, scored by summed cosine:
    ``(user_id, item_id, cooc_score, cooc_rank)``, at most ``n`` per user.

    A sparse product (users x seed items) @ (items x neighbours) sums the cosines in C, then one
    stable sort per partition keeps each user's best ``n`` (ties: lower item id first).
    ``graph`` is ``neighbour_graph(neighbours)`` when already built (None: the ids cannot index
    a sparse graph, so the pandas merge path runs without trying again).
    """
    latest = history.sort_values([USER, TIME], ascending=[True, False], kind="stable")
    latest = latest.drop_duplicates([USER, ITEM]).groupby(USER, sort=False).head(recent_items)
    if len(latest) == 0 or len(neighbours) == 0:
        return _empty_cooccurrence(history)
    if isinstance(graph, str):
        graph = neighbour_graph(neighbours)
    if graph is None:
        return _cooccurrence_by_merge(latest, neighbours, n)
    vocab = graph.vocab
    seed = vocab.get_indexer(latest[ITEM].to_numpy())
    known = seed >= 0
    users, user_codes = np.unique(latest[USER].to_numpy()[known], return_inverse=True)
    seeds = sp.csr_matrix((np.ones(int(known.sum())), (user_codes, seed[known])),
                          shape=(len(users), len(vocab)))
    # A sparse product holds each (user, item) once, in no particular column order: rather than
    # sorting every row's columns, the few kept per user are sorted with the item as tie-break.
    scores = (seeds @ graph.matrix).tocsr()
    row = np.repeat(np.arange(len(users)), np.diff(scores.indptr))
    col, data = scores.indices, scores.data
    kept = data >= _nth_largest(scores, n)[row]  # the best n, and any ties with the n-th
    row, col, data = row[kept], col[kept], data[kept]
    order = lexsort((col, -data, row))  # equal scores: lower item id (column) first
    row, col, data = row[order], col[order], data[order]
    starts = np.r_[0, np.cumsum(np.bincount(row, minlength=len(users)))[:-1]]
    rank = np.arange(len(row)) - starts[row] + 1
    keep = (rank <= n) & (data > 0)
    return pd.DataFrame({USER: users[row[keep]], ITEM: vocab.to_numpy()[col[keep]],
                         "cooc_score": data[keep].astype(np.float32),
                         "cooc_rank": rank[keep].astype(np.int64)})


def _nth_largest(scores: sp.csr_matrix, n: int) -> np.ndarray:
    """Per row, the ``n``-th largest stored value (-inf for rows with fewer): a threshold that
    lets the exact sort see about ``n`` entries per user instead of all of them."""
    lengths = np.diff(scores.indptr)
    width = int(lengths.max()) if len(lengths) else 0
    if width <= n:
        return np.full(scores.shape[0], -np.inf)
    dense = np.full((scores.shape[0], width), -np.inf)
    row = np.repeat(np.arange(scores.shape[0]), lengths)
    dense[row, np.arange(len(row)) - scores.indptr[row]] = scores.data
    return np.partition(dense, width - n, axis=1)[:, width - n]


def _empty_cooccurrence(history: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({USER: history[USER].iloc[:0], ITEM: history[ITEM].iloc[:0],
                         "cooc_score": np.float32(), "cooc_rank": np.int64()})


def _cooccurrence_by_merge(latest: pd.DataFrame, neighbours: pd.DataFrame,
                           n: int) -> pd.DataFrame:
    """The pandas path for ids the sparse path cannot index (mixed or text ids)."""
    pairs = latest[[USER, ITEM]].merge(neighbours, on=ITEM, how="inner")
    scores = pairs.groupby([USER, "neighbor_id"], sort=False, as_index=False)["cooc_score"].sum()
    scores = scores.rename(columns={"neighbor_id": ITEM})
    scores = scores.sort_values([USER, "cooc_score", ITEM], ascending=[True, False, True])
    scores["cooc_rank"] = scores.groupby(USER, sort=False).cumcount() + 1
    return scores[scores["cooc_rank"] <= n].reset_index(drop=True)


def repeat_candidates(history: pd.DataFrame, n: int) -> pd.DataFrame:
    """The user's own most frequent past items (ties: most recent first, then item id):
    ``(user_id, item_id, repeat_rank)``, at most ``n`` per user. The strongest candidates where
    people come back (groceries, music); ``filter.exclude_seen`` removes them again unless
    limited by ``filter.seen_window_days``."""
    stats = history.groupby([USER, ITEM], sort=False).agg(_count=(TIME, "size"),
                                                          _last=(TIME, "max")).reset_index()
    stats = stats.sort_values([USER, "_count", "_last", ITEM],
                              ascending=[True, False, False, True], kind="stable")
    stats["repeat_rank"] = stats.groupby(USER, sort=False).cumcount() + 1
    return stats.loc[stats["repeat_rank"] <= n, [USER, ITEM, "repeat_rank"]].reset_index(drop=True)


def merge_candidates(by_popularity: pd.DataFrame, by_cooccurrence: pd.DataFrame,
                     by_repeat: pd.DataFrame | None = None,
                     by_embedding: pd.DataFrame | None = None) -> pd.DataFrame:
    """Outer-merge generators on (user, item); missing ranks and scores become neutral values
    and ``source`` names every generator that proposed the item, joined by ``+``. Rows come out
    sorted by (user, item). With ``by_embedding``, ``emb_rank`` is kept (its score is a ranker
    signal for every row: ``rank_features.add_signals``)."""
    generators = [(SOURCE_POPULARITY, by_popularity), (SOURCE_COOCCURRENCE, by_cooccurrence)]
    if by_repeat is not None:
        generators.append((SOURCE_REPEAT, by_repeat))
    if by_embedding is not None:
        generators.append((SOURCE_EMBEDDING, by_embedding))
    fast = _merge_by_keys(generators)
    if fast is not None:
        return fast
    merged = by_popularity.merge(by_cooccurrence, on=[USER, ITEM], how="outer")
    for _, frame in generators[2:]:
        kept = [c for c in frame.columns if c in (USER, ITEM, *_RANKS)]
        merged = merged.merge(frame[kept], on=[USER, ITEM], how="outer")
    proposed = [(name, merged[_RANK_OF[name]].notna().to_numpy()) for name, _ in generators]
    merged = merged.drop(columns=[c for c in merged.columns if c not in _MERGED_COLUMNS])
    merged["pop_rank"] = merged["pop_rank"].fillna(NO_RANK).astype("int64")
    merged["cooc_rank"] = merged["cooc_rank"].fillna(NO_RANK).astype("int64")
    merged["cooc_score"] = merged["cooc_score"].fillna(0.0).astype("float32")
    if by_embedding is not None:
        merged["emb_rank"] = merged["emb_rank"].fillna(NO_RANK).astype("int64")
    merged["source"] = source_column(proposed)
    return merged


_RANK_OF = {SOURCE_POPULARITY: "pop_rank", SOURCE_COOCCURRENCE: "cooc_rank",
            SOURCE_REPEAT: "repeat_rank", SOURCE_EMBEDDING: "emb_rank"}
_RANKS = tuple(_RANK_OF.values())
_MERGED_COLUMNS = (USER, ITEM, "pop_rank", "cooc_score", "cooc_rank", "emb_rank")


def _merge_by_keys(generators: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame | None:
    """The outer merge as one ``np.unique`` over int64 (user, item) keys (None when the ids are
    not small integers): no hash join, no per-column reindexing."""
    frames = [frame for _, frame in generators]
    keys = [pair_keys(f[USER].to_numpy(), f[ITEM].to_numpy()) for f in frames]
    if any(k is None for k in keys):
        return None
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    bounds = np.cumsum([0, *map(len, frames)])
    at = {name: inverse[bounds[i]:bounds[i + 1]] for i, (name, _) in enumerate(generators)}
    found = dict(generators)
    proposed = []
    for name, _ in generators:
        flags = np.zeros(len(unique), dtype=bool)
        flags[at[name]] = True
        proposed.append((name, flags))

    def spread(name: str, column: str, fill: float, dtype: type) -> np.ndarray:
        out = np.full(len(unique), fill, dtype=dtype)
        out[at[name]] = found[name][column].to_numpy()
        return out

    users, items = split_keys(unique)
    by_popularity = found[SOURCE_POPULARITY]
    columns = {
        USER: users.astype(by_popularity[USER].dtype),
        ITEM: items.astype(by_popularity[ITEM].dtype),
        "pop_rank": spread(SOURCE_POPULARITY, "pop_rank", NO_RANK, np.int64),
        "cooc_score": spread(SOURCE_COOCCURRENCE, "cooc_score", 0.0, np.float32),
        "cooc_rank": spread(SOURCE_COOCCURRENCE, "cooc_rank", NO_RANK, np.int64),
    }
    if SOURCE_EMBEDDING in found:
        columns["emb_rank"] = spread(SOURCE_EMBEDDING, "emb_rank", NO_RANK, np.int64)
    return pd.DataFrame({**columns, "source": source_column(proposed)})


def source_column(proposed: list[tuple[str, np.ndarray]]) -> pd.Categorical:
    """Per row, the names of the generators whose flag is set, joined by ``+``: a categorical
    over the 2^g flag combinations, so a million candidate rows carry one small code each (the
    listed rows become plain strings in ``topk``)."""
    code = np.zeros(len(proposed[0][1]), dtype=np.int8)
    for bit, (_, flags) in enumerate(proposed):
        code |= flags.astype(np.int8) << bit
    names = ["+".join(n for b, (n, _) in enumerate(proposed) if c >> b & 1)
             for c in range(2 ** len(proposed))]
    names[0] = "none"  # no generator: never a candidate row, but categories must be unique
    return pd.Categorical.from_codes(code, categories=names)
