"""Filter-stage business rules: given these candidates and this workflow section, expect these
rows removed and counted, and the fallback never bringing a removed item back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.candidates.context import NightContext
from pipeline.candidates.filters import pairs_isin, seen_pairs
from pipeline.candidates.popularity import DAY
from pipeline.candidates.retrieve import filter_candidates
from pipeline.candidates.rules import (
    FilterRules,
    condition_mask,
    fallback_items,
    read_availability,
    resolve_rules,
)
from pipeline.config import CandidatesSpec, FilterSpec, ItemCondition
from pipeline.errors import ConfigError, DataError
from pipeline.recommend.batch import final_lists

ITEMS = pd.DataFrame({"item_id": [1, 2, 3, 4, 5, 6],
                      "genre": ["a", "a", "b", "b", "c", None],
                      "price": [1.0, 5.0, 10.0, 2.0, 8.0, 3.0],
                      "adult": [False, True, False, False, False, False]})
POPULAR = pd.DataFrame({"item_id": [1, 2, 3, 4, 5, 6], "pop_rank": [1, 2, 3, 4, 5, 6]})


def context(rules: FilterRules | None, *, k: int = 3, exclude_seen: bool = True,
            window: float | None = None, cutoff: int = 100 * DAY) -> NightContext:
    return NightContext(cutoff=cutoff, popular=POPULAR, neighbors=None, users=None,
                        items=None, workflow_dir="", candidates=CandidatesSpec(),
                        exclude_seen=exclude_seen, k=k, seen_window_days=window, rules=rules)


def candidates(users: list[int], items: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": np.repeat(users, len(items)),
                         "item_id": np.tile(items, len(users)), "source": "popularity"})


def history(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


NO_HISTORY = history([])


@pytest.mark.parametrize(("cond", "expected"), [
    ({"column": "genre", "equals": "a"}, [1, 2]),
    ({"column": "genre", "in": ["b", "c"]}, [3, 4, 5]),
    ({"column": "price", "lt": 3}, [1, 4]),
    ({"column": "price", "gt": 7.5}, [3, 5]),
    ({"column": "adult", "equals": True}, [2]),
])
def test_item_conditions_select_the_matching_items(cond: dict, expected: list[int]) -> None:
    hit = condition_mask(ITEMS, ItemCondition.model_validate(cond), "where", "items.parquet")
    assert ITEMS.loc[hit, "item_id"].tolist() == expected


def test_unknown_column_names_it_and_the_columns_there_are() -> None:
    spec = FilterSpec.model_validate({"exclude_items_where": [{"column": "colour",
                                                               "equals": "red"}]})
    with pytest.raises(ConfigError) as err:
        resolve_rules(spec, ITEMS, "items.parquet", None)
    message = str(err.value)
    assert "filter.exclude_items_where[0]" in message and "'colour'" in message
    assert "genre, price" in message and "items.parquet" in message


def test_a_condition_needs_exactly_one_test() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        ItemCondition.model_validate({"column": "price", "lt": 1, "gt": 0})


def test_each_rule_counts_the_rows_it_removed(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": [7, 7], "item_id": [3, 6]}).to_parquet(tmp_path / "block.parquet")
    pd.DataFrame({"item_id": [1, 2, 3, 4, 5, 1, 6], "date": ["2026-01-02"] * 5 +
                  ["2026-01-03"] * 2}).to_parquet(tmp_path / "avail.parquet")
    spec = FilterSpec.model_validate({
        "exclude_items_where": [{"column": "adult", "equals": True}],
        "availability": tmp_path / "avail.parquet", "blocklist": tmp_path / "block.parquet"})
    rules = resolve_rules(spec, ITEMS, "items.parquet", "2026-01-02")
    rows = candidates([7, 8], [1, 2, 3, 4, 5, 6])
    seen = history([(8, 1, 0)])
    kept, removed = filter_candidates(rows, seen, context(rules))
    assert removed == {"seen": 1, "exclude_items_where[0]:adult": 2, "unavailable": 2,
                       "blocklist": 1}
    assert {u: g["item_id"].tolist() for u, g in kept.groupby("user_id")} == {
        7: [1, 4, 5], 8: [3, 4, 5]}


def test_availability_without_rows_for_the_run_date_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "avail.parquet"
    pd.DataFrame({"item_id": [1, 2], "date": pd.to_datetime(["2026-01-01", "2026-01-02"])}
                 ).to_parquet(path)
    assert read_availability(path, "2026-01-02").tolist() == [2]
    with pytest.raises(DataError) as err:
        read_availability(path, "2026-02-01")
    assert str(path) in str(err.value) and "2026-02-01" in str(err.value)
    assert "2026-01-01 to 2026-01-02" in str(err.value)


def test_blocklist_missing_columns_names_them(tmp_path: Path) -> None:
    pd.DataFrame({"user": [1], "item_id": [2]}).to_parquet(tmp_path / "b.parquet")
    spec = FilterSpec.model_validate({"blocklist": tmp_path / "b.parquet"})
    with pytest.raises(DataError, match="lacks column.*user_id"):
        resolve_rules(spec, None, "", None)


def test_seen_window_only_excludes_recent_items() -> None:
    cutoff = 100 * DAY
    seen = history([(1, 10, cutoff - 40 * DAY), (1, 11, cutoff - 2 * DAY)])
    assert seen_pairs(seen, cutoff, 7)["item_id"].tolist() == [11]
    assert seen_pairs(seen, cutoff, None)["item_id"].tolist() == [10, 11]
    rows = candidates([1], [10, 11, 12])
    kept, removed = filter_candidates(rows, seen, context(None, window=7))
    assert kept["item_id"].tolist() == [10, 12] and removed == {"seen": 1}
    kept, removed = filter_candidates(rows, seen, context(None, exclude_seen=False))
    assert kept["item_id"].tolist() == [10, 11, 12] and removed == {}


def test_fallback_respects_every_rule() -> None:
    """User 1 has one scored candidate; the filler may not use the blocked, unavailable or
    excluded items, nor exceed one item per genre."""
    rules = FilterRules(excluded={"x": np.array([2])}, available=np.array([1, 2, 3, 4, 6]),
                        blocklist=pd.DataFrame({"user_id": [1], "item_id": [3]}),
                        category=pd.Series([0, 0, 1, 1, 2], index=[1, 2, 3, 4, 5]),
                        max_per_category=1)
    scored = pd.DataFrame({"user_id": [1], "item_id": [1], "source": ["cooccurrence"],
                           "score": np.float32([0.9])})
    lists = final_lists(scored, np.array([1, 9]), NO_HISTORY, context(rules, k=4))
    got = {u: g["item_id"].tolist() for u, g in lists.groupby("user_id")}
    # user 1: 1 (genre a), then 4 (b; 3 blocked), 6 (no genre); 2, 5 excluded/unavailable
    assert got == {1: [1, 4, 6], 9: [1, 3, 6]}
    assert fallback_items(POPULAR, rules, 4)["item_id"].tolist() == [1, 3, 6]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 12), st.floats(0, 1)),
                min_size=0, max_size=80),
       st.lists(st.tuples(st.integers(0, 5), st.integers(0, 12)), max_size=20),
       st.integers(1, 3), st.integers(1, 8))
def test_lists_keep_the_cap_and_never_hold_blocked_pairs(
    scored_rows: list[tuple[int, int, float]], blocked: list[tuple[int, int]], m: int, k: int,
) -> None:
    popular = pd.DataFrame({"item_id": np.arange(13), "pop_rank": np.arange(1, 14)})
    genre = pd.Series(np.arange(13) % 4, index=np.arange(13))
    block = pd.DataFrame(blocked, columns=["user_id", "item_id"], dtype="int64")
    rules = FilterRules(blocklist=block, category=genre, max_per_category=m)
    scored = pd.DataFrame(scored_rows, columns=["user_id", "item_id", "score"])
    scored = scored.drop_duplicates(["user_id", "item_id"]).astype({"score": "float32"})
    scored = scored.assign(source="popularity")
    ctx = dataclasses.replace(context(rules, k=k), popular=popular)
    scored, _ = filter_candidates(scored, NO_HISTORY, ctx)
    users = np.arange(6)
    lists = final_lists(scored, users, NO_HISTORY, ctx)
    per_genre = lists.assign(g=genre.reindex(lists["item_id"]).to_numpy())
    assert per_genre.groupby(["user_id", "g"]).size().max() <= m
    assert not pairs_isin(lists["user_id"].to_numpy(), lists["item_id"].to_numpy(), block).any()
    sizes = lists.groupby("user_id").size().reindex(users, fill_value=0)
    allowed_max = 4 * m  # four genres, m each; blocked pairs can only lower it
    assert (sizes <= min(k, allowed_max)).all()
    assert (lists.groupby("user_id")["item_id"].nunique() == lists.groupby("user_id").size()).all()
    free = [13 - len({i for u2, i in blocked if u2 == u}) for u in users]
    assert all(sizes[u] == min(k, allowed_max) for u in users if free[u] == 13)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), max_size=30),
       st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), max_size=30),
       st.booleans())
def test_pairs_isin_matches_a_merge(left: list, right: list, as_text: bool) -> None:
    lf = pd.DataFrame(left, columns=["user_id", "item_id"], dtype="int64")
    rf = pd.DataFrame(right, columns=["user_id", "item_id"], dtype="int64")
    if as_text:  # the merge path for non-integer ids
        lf, rf = lf.astype(str), rf.astype(str)
    got = pairs_isin(lf["user_id"].to_numpy(), lf["item_id"].to_numpy(), rf)
    keys = set(map(tuple, rf.to_numpy().tolist()))
    assert got.tolist() == [tuple(r) in keys for r in lf.to_numpy().tolist()]


def test_rule_tables_resolve_against_the_workflow_folder(tmp_path: Path) -> None:
    from pipeline.config import parse_workflow

    raw = {"name": "w", "data": {"interactions": {"path": "log", "columns": {
        "user": "u", "item": "i", "timestamp": "t"}}},
        "filter": {"blocklist": "rules/block.parquet", "availability": "/abs/avail.parquet"}}
    spec = parse_workflow(raw, source=tmp_path / "w.yaml")
    assert spec.filter.blocklist == tmp_path / "rules" / "block.parquet"
    assert spec.filter.availability == Path("/abs/avail.parquet")
