"""The fast paths of retrieval equal the plain pandas ones: the sparse co-occurrence product
equals the merge-and-groupby, and the key-based outer merge equals ``DataFrame.merge``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.candidates import generators as cand

pairs = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9)), min_size=0, max_size=40)


def _history(rows: list[tuple[int, int]]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [u for u, _ in rows], "item_id": [i for _, i in rows],
                         "timestamp": np.arange(len(rows))}, dtype="int64")


def _plain_cooccurrence(history: pd.DataFrame, nbrs: pd.DataFrame, recent: int,
                        n: int) -> pd.DataFrame:
    """The obvious pandas: each user's latest items joined with their neighbors, cosines
    summed, the best ``n`` kept (ties: lower item id)."""
    latest = history.sort_values(["user_id", "timestamp"], ascending=[True, False])
    latest = latest.drop_duplicates(["user_id", "item_id"]).groupby("user_id").head(recent)
    pairs = latest[["user_id", "item_id"]].merge(nbrs, on="item_id", how="inner")
    scores = pairs.groupby(["user_id", "neighbor_id"], as_index=False)["cooc_score"].sum()
    scores = scores.rename(columns={"neighbor_id": "item_id"})
    scores = scores.sort_values(["user_id", "cooc_score", "item_id"],
                                ascending=[True, False, True])
    scores["cooc_rank"] = scores.groupby("user_id").cumcount() + 1
    return scores[(scores["cooc_rank"] <= n) & (scores["cooc_score"] > 0)].reset_index(
        drop=True)[["user_id", "item_id", "cooc_rank"]]


@settings(max_examples=60, deadline=None)
@given(pairs, st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(1, 8)),
                       min_size=1, max_size=40), st.integers(1, 4), st.integers(1, 6))
def test_sparse_cooccurrence_equals_the_merge(hist: list, edges: list, recent: int,
                                              n: int) -> None:
    nbrs = pd.DataFrame(edges, columns=["item_id", "neighbor_id", "cooc_score"])
    nbrs = nbrs[nbrs["item_id"] != nbrs["neighbor_id"]].drop_duplicates(
        ["item_id", "neighbor_id"]).astype({"cooc_score": "float32"})
    nbrs["cooc_score"] /= np.float32(8)  # multiples of 1/8: sums are exact in both paths
    if nbrs.empty:
        return
    history = _history(hist)
    fast = cand.cooccurrence_scores(history, cand.neighbor_graph(nbrs), recent).top_n(n)
    plain = _plain_cooccurrence(history, nbrs, recent, n)
    assert fast.values.tolist() == plain.values.tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), unique=True, max_size=6), pairs, pairs, st.booleans())
def test_key_merge_equals_the_pandas_merge(top: list[int], cooc: list, repeat: list,
                                           with_repeat: bool) -> None:
    popular = pd.DataFrame({"item_id": top, "pop_rank": np.arange(1, len(top) + 1)},
                           dtype="int64")
    by_pop = cand.popularity_candidates(np.arange(4, dtype=np.int64), popular, 4)
    by_cooc = _history(cooc).drop_duplicates(["user_id", "item_id"]).drop(columns="timestamp")
    by_cooc = by_cooc.assign(cooc_rank=np.arange(len(by_cooc)))
    found = {"popularity": by_pop, "cooccurrence": by_cooc}
    if with_repeat:
        by_rep = _history(repeat).drop_duplicates(["user_id", "item_id"]).drop(
            columns="timestamp")
        found["repeat"] = by_rep.assign(repeat_rank=1)
    fast = cand.merge_candidates(found)
    as_text = {c: "str" for c in ("user_id", "item_id")}  # text ids take the pandas path
    plain = cand.merge_candidates({k: v.astype(as_text) for k, v in found.items()})
    plain = plain.astype({"user_id": "int64", "item_id": "int64"}).sort_values(
        ["user_id", "item_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(fast, plain[fast.columns], check_dtype=False,
                                  check_categorical=False)


@settings(max_examples=60, deadline=None)
@given(pairs, pairs)
def test_pair_counts_equal_a_groupby_join(history: list, probe: list) -> None:
    from pipeline.candidates.filters import pair_counts

    seen, rows = _history(history), _history(probe)
    expected = rows.join(seen.groupby(["user_id", "item_id"]).size().rename("n"),
                         on=["user_id", "item_id"])["n"].fillna(0).astype("int64").tolist()
    users, items = rows["user_id"].to_numpy(), rows["item_id"].to_numpy()
    assert pair_counts(users, items, seen).tolist() == expected  # int keys
    as_text = seen.astype({"user_id": "str"})
    assert pair_counts(users.astype(str), items, as_text).tolist() == expected  # the join path
