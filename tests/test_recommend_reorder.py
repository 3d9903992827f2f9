"""Reorder stage: boosts, MMR and category caps; the vectorised MMR equals a plain per-user
greedy loop, and the repeat generator proposes a user's own most frequent items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.candidates.generators import (
    NO_RANK,
    merge_candidates,
    popularity_candidates,
    repeat_candidates,
)
from pipeline.candidates.rules import NO_CATEGORY
from pipeline.config import ReorderSpec
from pipeline.errors import ConfigError
from pipeline.recommend.reorder import ORDER, mmr_order, reorder, resolve_reorder
from pipeline.recommend.topk import top_k

ITEMS = pd.DataFrame({"item_id": [1, 2, 3, 4, 5, 6],
                      "genre": ["a", "a", "a", "b", "b", "c"],
                      "new": [False, False, False, False, True, True]})


def scored(scores: dict[int, float], user: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"user_id": user, "item_id": list(scores),
                         "score": np.float32(list(scores.values())), "source": "popularity"})


def plan(section: dict):
    return resolve_reorder(ReorderSpec.model_validate(section), ITEMS, "items.parquet")


def listed(frame: pd.DataFrame, k: int) -> list[int]:
    return top_k(frame, k, key=ORDER)["item_id"].tolist()


def test_boost_lifts_matching_items_even_with_negative_margins() -> None:
    rows = scored({1: -0.5, 2: -0.6, 5: -1.0, 6: -3.0})
    assert listed(reorder(rows, None, 4), 4) == [1, 2, 5, 6]
    boosted = reorder(rows, plan({"boosts": [{"column": "new", "equals": True,
                                              "factor": 3.0}]}), 4)
    # shifted to start at 1: 1 -> 3.5, 2 -> 3.4, 5 -> 3.0 * 3, 6 -> 1.0 * 3
    assert listed(boosted, 4) == [5, 1, 2, 6]


def test_mmr_interleaves_categories_and_lambda_one_keeps_the_score_order() -> None:
    rows = scored({1: 1.0, 2: 0.9, 3: 0.8, 4: 0.5, 6: 0.1})
    assert listed(reorder(rows, plan({"diversity": {"column": "genre", "lambda": 1.0}}), 3),
                  3) == [1, 2, 3]
    assert listed(reorder(rows, plan({"diversity": {"column": "genre", "lambda": 0.5}}), 3),
                  3) == [1, 4, 6]


def test_caps_move_items_beyond_m_below_the_rest() -> None:
    rows = scored({1: 1.0, 2: 0.9, 3: 0.8, 4: 0.5, 6: 0.1})
    caps = plan({"diversity": {"method": "caps", "column": "genre", "m": 2}})
    assert listed(reorder(rows, caps, 5), 5) == [1, 2, 4, 6, 3]


def test_unknown_diversity_column_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="reorder.diversity.*'mood'.*genre"):
        plan({"diversity": {"column": "mood"}})


def naive_mmr(rel: list[float], cats: list[int], k: int, lam: float) -> list[int]:
    picked: list[int] = []
    for _ in range(min(k, len(rel))):
        covered = {cats[j] for j in picked if cats[j] != NO_CATEGORY}
        gains = [(lam * rel[i] - (1 - lam) * (cats[i] in covered), -i)
                 for i in range(len(rel)) if i not in picked]
        picked.append(-max(gains)[1])
    return picked


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 99), st.integers(-1, 3)), min_size=1,
                         max_size=12), min_size=1, max_size=6),
       st.integers(1, 6), st.sampled_from([0.0, 0.3, 0.7, 1.0]))
def test_vectorised_mmr_equals_a_per_user_loop(users: list, k: int, lam: float) -> None:
    rel, cats, ids, expected = [], [], [], []
    for u, rows in enumerate(users):
        r = sorted((v / 99 for v, _ in rows), reverse=True)  # rows arrive sorted best first
        c = [c for _, c in rows]
        rel += r
        cats += c
        ids += [u] * len(r)
        expected.append(naive_mmr(r, c, k, lam))
    order = mmr_order(np.array(ids), np.array(rel), np.array(cats, dtype=np.int64), k, lam,
                      pool=100)
    frame = pd.DataFrame({"u": ids, "pos": np.concatenate([np.arange(len(r)) for r in users]),
                          "order": order})
    for u, picks in enumerate(expected):
        got = frame[frame["u"] == u].sort_values("order", ascending=False, kind="stable")
        assert got["pos"].tolist()[:len(picks)] == picks


def test_repeat_generator_ranks_by_count_then_recency() -> None:
    hist = pd.DataFrame({"user_id": [1, 1, 1, 1, 1, 2], "item_id": [10, 11, 11, 12, 10, 10],
                         "timestamp": [1, 2, 3, 9, 4, 1]})
    out = repeat_candidates(hist, n=2)
    assert out.values.tolist() == [[1, 10, 1], [1, 11, 2], [2, 10, 1]]


def test_merge_names_all_three_generators() -> None:
    popular = pd.DataFrame({"item_id": [1, 2], "pop_rank": [1, 2]})
    by_pop = popularity_candidates(np.array([7]), popular, n=2)
    by_cooc = pd.DataFrame({"user_id": [7], "item_id": [3], "cooc_score": np.float32([0.4]),
                            "cooc_rank": [1]})
    by_repeat = pd.DataFrame({"user_id": [7, 7], "item_id": [2, 3], "repeat_rank": [1, 2]})
    merged = merge_candidates({"popularity": by_pop, "cooccurrence": by_cooc,
                               "repeat": by_repeat}).sort_values("item_id")
    assert merged["source"].tolist() == ["popularity", "popularity+repeat",
                                         "cooccurrence+repeat"]
    assert merged["repeat_rank"].tolist() == [NO_RANK, 1, 2]  # every generator's rank
