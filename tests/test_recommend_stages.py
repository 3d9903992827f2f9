"""The four stages on hand-made partitions: given this history, expect these candidates/lists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.candidates.cooccurrence import _partition_cooccurrence, top_neighbors
from pipeline.candidates.filters import drop_seen
from pipeline.candidates.generators import (
    NO_RANK,
    cooccurrence_scores,
    merge_candidates,
    neighbor_graph,
    popularity_candidates,
)
from pipeline.candidates.popularity import rank_items
from pipeline.recommend.topk import fill_short_lists, top_k


def history(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def test_popularity_ranks_by_recent_then_total_then_id() -> None:
    total = pd.Series({10: 5, 11: 9, 12: 5, 13: 1})
    recent = pd.Series({10: 2, 12: 2, 11: 1})
    ranked = rank_items(total, recent)
    assert ranked["item_id"].tolist() == [10, 12, 11, 13]
    assert ranked["pop_rank"].tolist() == [1, 2, 3, 4]
    assert ranked["pop_recent"].tolist() == [2, 2, 1, 0]


def test_cooccurrence_cosine_neighbors() -> None:
    # users 1 and 2 both saw items a and b; user 3 saw b and c.
    hist = history([(1, 100, 0), (1, 200, 1), (2, 100, 0), (2, 200, 1), (3, 200, 0), (3, 300, 1)])
    catalogue = pd.Index([100, 200, 300])
    counts = _partition_cooccurrence(hist, catalogue)
    assert counts.toarray().tolist() == [[2, 2, 0], [2, 3, 1], [0, 1, 1]]
    nbrs = top_neighbors(counts, catalogue, neighbors=5)
    by_pair = {(a, b): s for a, b, s in nbrs.itertuples(index=False)}
    assert by_pair[(100, 200)] == np.float32(2 / np.sqrt(2 * 3))
    assert by_pair[(300, 200)] == np.float32(1 / np.sqrt(3 * 1))
    assert (100, 300) not in by_pair and (100, 100) not in by_pair


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 8)), min_size=1, max_size=60),
       st.integers(1, 4))
def test_cooccurrence_partials_merge_to_the_whole(pairs: list[tuple[int, int]], parts: int) -> None:
    """Summing per-partition XᵀX (users split across partitions) equals XᵀX of all users."""
    hist = pd.DataFrame(pairs, columns=["user_id", "item_id"]).assign(timestamp=0)
    catalogue = pd.Index(range(9))
    whole = _partition_cooccurrence(hist, catalogue)
    split = [hist[hist["user_id"] % parts == p] for p in range(parts)]
    merged = sum((_partition_cooccurrence(s, catalogue) for s in split), sp.csr_matrix((9, 9)))
    assert (merged != whole).nnz == 0


def test_cooccurrence_candidates_sum_scores_over_recent_items() -> None:
    hist = history([(1, 100, 5), (1, 200, 9)])
    graph = neighbor_graph(pd.DataFrame({"item_id": [100, 200, 200],
                                          "neighbor_id": [300, 300, 400],
                                          "cooc_score": np.float32([0.5, 0.25, 0.9])}))
    scores = cooccurrence_scores(hist, graph, recent_items=2)
    out = scores.top_n(10)
    assert out[["item_id", "cooc_rank"]].values.tolist() == [[400, 1], [300, 2]]
    assert scores.pair_scores(np.array([1, 1, 1, 2]), np.array([400, 300, 100, 400])).tolist() \
        == [np.float32(0.9), np.float32(0.75), 0.0, 0.0]  # any pair: 0 when nothing co-occurs
    only_latest = cooccurrence_scores(hist, graph, recent_items=1).top_n(10)
    assert set(only_latest["item_id"]) == {300, 400}  # seeded by item 200 (latest) only
    assert scores.top_n(1)["item_id"].tolist() == [400]


def test_merge_keeps_every_generators_rank_and_names() -> None:
    popular = pd.DataFrame({"item_id": [1, 2], "pop_rank": [1, 2]})
    by_pop = popularity_candidates(np.array([7]), popular, n=2)
    by_cooc = pd.DataFrame({"user_id": [7, 7], "item_id": [2, 3], "cooc_rank": [1, 2]})
    merged = merge_candidates({"popularity": by_pop, "cooccurrence": by_cooc})
    assert merged["item_id"].tolist() == [1, 2, 3]
    assert merged["source"].tolist() == ["popularity", "popularity+cooccurrence", "cooccurrence"]
    assert merged["pop_rank"].tolist() == [1, 2, NO_RANK]
    assert merged["cooc_rank"].tolist() == [NO_RANK, 1, 2]


def test_drop_seen_removes_exactly_the_seen_pairs() -> None:
    cands = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10], "x": [1, 2, 3]})
    seen = history([(1, 10, 0), (1, 10, 5), (3, 11, 0)])
    out = drop_seen(cands, seen)
    assert out.values.tolist() == [[1, 11, 2], [2, 10, 3]]


def test_top_k_orders_by_score_then_item() -> None:
    scored = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [5, 4, 6, 9],
                           "score": [0.5, 0.5, 0.9, 0.1], "source": ["p"] * 4})
    out = top_k(scored, k=2)
    assert out[["user_id", "rank", "item_id"]].values.tolist() == [[1, 1, 6], [1, 2, 4],
                                                                   [2, 1, 9]]


def test_short_lists_are_filled_with_unseen_popular_items() -> None:
    lists = pd.DataFrame({"user_id": [1], "rank": [1], "item_id": [30], "score": [0.7],
                          "source": ["cooccurrence"]})
    popular = pd.DataFrame({"item_id": [10, 20, 30, 40], "pop_rank": [1, 2, 3, 4]})
    seen = history([(1, 10, 0), (2, 20, 0)])
    out = fill_short_lists(lists, np.array([1, 2]), popular, seen, k=3)
    got = {u: g["item_id"].tolist() for u, g in out.groupby("user_id")}
    assert got == {1: [30, 20, 40], 2: [10, 30, 40]}
    assert out.groupby("user_id")["rank"].apply(list).to_dict() == {1: [1, 2, 3], 2: [1, 2, 3]}
    assert set(out.loc[out["score"] == 0, "source"]) == {"fallback"}


def test_catalogue_smaller_than_k_gives_every_unseen_item() -> None:
    empty = pd.DataFrame({"user_id": pd.Series(dtype="int64"), "rank": pd.Series(dtype="int64"),
                          "item_id": pd.Series(dtype="int64"), "score": pd.Series(dtype="f4"),
                          "source": pd.Series(dtype="str")})
    popular = pd.DataFrame({"item_id": [10, 20], "pop_rank": [1, 2]})
    out = fill_short_lists(empty, np.array([1]), popular, history([(1, 10, 0)]), k=5)
    assert out["item_id"].tolist() == [20]
