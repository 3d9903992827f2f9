"""Categorify's options: per-column thresholds, max_size, joint vocabularies; statistics kept
for incremental refits and round-tripped through save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, DataError
from pipeline.features import Categorify, CategorifyCombo, Workflow


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.sampled_from(list("abcdefgh")), min_size=1, max_size=60),
    max_size=st.integers(1, 8),
    threshold=st.integers(0, 4),
)
def test_max_size_and_threshold_against_value_counts(
    values: list, max_size: int, threshold: int
) -> None:
    frame = pd.DataFrame({"c": pd.Series(values, dtype="str")})
    wf = Workflow([Categorify(["c"], freq_threshold=threshold, max_size=max_size)]).fit(frame)
    out = wf.transform(frame)["c"]
    counts = frame["c"].value_counts()
    order = sorted(counts.index, key=lambda v: (-counts[v], v))
    kept = [v for v in order if counts[v] >= threshold][:max_size]
    expected = {v: 3 + i for i, v in enumerate(kept)}
    for raw, code in zip(frame["c"], out, strict=True):
        assert code == expected[raw] if raw in expected else code == 2  # one OOV bucket
    mapping = wf.categorify_mapping("c")
    assert mapping["value"].tolist() == kept
    assert mapping["count"].tolist() == [int(counts[v]) for v in kept]


@settings(max_examples=40, deadline=None)
@given(
    fitted=st.lists(st.one_of(st.none(), st.sampled_from(list("abcdefghij"))), min_size=1,
                    max_size=60).filter(lambda v: any(x is not None for x in v)),
    scored=st.lists(st.one_of(st.none(), st.sampled_from(list("abcdefghijxyz"))), min_size=1,
                    max_size=60),
    dtype=st.sampled_from(["str", "string", "object"]),
    buckets=st.integers(1, 3),
)
def test_strings_with_nulls_and_unseen_values(fitted: list, scored: list, dtype: str,
                                               buckets: int) -> None:
    """Strings are looked up with their nulls in place, through either of Arrow's lookups (a
    vocabulary small or large beside the frame): nulls index 1, unseen values their bucket."""
    frame = pd.DataFrame({"c": pd.Series(fitted, dtype=dtype)})
    wf = Workflow([Categorify(["c"], num_buckets=buckets)]).fit(frame)
    out = wf.transform(pd.DataFrame({"c": pd.Series(scored, dtype=dtype)}))["c"].tolist()
    counts = frame["c"].value_counts()
    kept = sorted(counts.index, key=lambda v: (-counts[v], v))
    index = {v: 2 + buckets + i for i, v in enumerate(kept)}
    mapping = wf.categorify_mapping("c")
    assert mapping["value"].tolist() == kept and mapping["count"].tolist() == [
        int(counts[v]) for v in kept]
    for raw, code in zip(scored, out, strict=True):
        if raw is None:
            assert code == 1
        elif raw in index:
            assert code == index[raw]
        else:
            assert 2 <= code < 2 + buckets
    unseen = [c for raw, c in zip(scored, out, strict=True) if raw is not None and raw not in index]
    again = wf.transform(pd.DataFrame({"c": pd.Series(
        [r for r in scored if r is not None and r not in index], dtype=dtype)}))["c"].tolist()
    assert unseen == again  # a value's bucket does not depend on its neighbors


def test_per_column_threshold() -> None:
    frame = pd.DataFrame({"a": ["x", "x", "y"], "b": ["x", "x", "y"]})
    out = Workflow([Categorify(["a", "b"], freq_threshold={"a": 2})]).fit(frame).transform(frame)
    assert out["a"].tolist() == [3, 3, 2]  # y is rare in a only
    assert out["b"].tolist() == [3, 3, 4]


def test_joint_vocabulary_shares_indices(tmp_path) -> None:
    frame = pd.DataFrame({"item": ["a", "b", "b", None], "last_item": ["c", "b", "a", "a"]})
    wf = Workflow([Categorify(["item", "last_item"], encode_type="joint")]).fit(frame)
    out = wf.transform(frame)
    # Joint counts: b 3, a 3, c 1 -> a=3, b=4 (ties by value), c=5.
    assert out["item"].tolist() == [3, 4, 4, 1]
    assert out["last_item"].tolist() == [5, 4, 3, 3]
    assert wf.output_schema["item"]["cardinality"] == wf.output_schema["last_item"]["cardinality"]
    wf.save(tmp_path)
    loaded = Workflow.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.transform(frame), out)
    op = next(o for o in loaded.ops if isinstance(o, Categorify))
    assert [int(s.counts.sum()) for s in op.stats_] == [3, 4]
    with pytest.raises(DataError, match="one kind"):
        Workflow([Categorify(["a", "b"], encode_type="joint")]).fit(
            pd.DataFrame({"a": [1], "b": ["x"]})
        )


def test_statistics_survive_save_and_load(tmp_path) -> None:
    frame = pd.DataFrame({"c": [5, 5, 7, None, 9]})
    wf = Workflow([Categorify(["c"], freq_threshold=2)]).fit(frame)
    wf.save(tmp_path)
    fitted = next(o for o in wf.ops if isinstance(o, Categorify))
    loaded = next(o for o in Workflow.load(tmp_path).ops if isinstance(o, Categorify))
    pd.testing.assert_series_equal(loaded.stats_[0].counts, fitted.stats_[0].counts,
                                   check_index_type=False)
    assert loaded.stats_[0].nulls == 1


def test_bad_settings_and_all_null_column() -> None:
    with pytest.raises(ConfigError, match="freq_threshold names column"):
        Categorify(["a"], freq_threshold={"b": 2})
    with pytest.raises(ConfigError, match="max_size"):
        Categorify(["a"], max_size=0)
    with pytest.raises(ConfigError, match="encode_type"):
        Categorify(["a"], encode_type="combo")
    with pytest.raises(DataError, match=r"Categorify.*\['a'\].*no non-null"):
        Workflow([Categorify(["a"])]).fit(pd.DataFrame({"a": pd.Series([None], dtype="str")}))


@settings(max_examples=40, deadline=None)
@given(
    lists=st.lists(
        st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(0, 6)), max_size=4)),
        min_size=1,
        max_size=30,
    ).filter(lambda ls: any(v is not None for x in ls if x for v in x)),
)
def test_list_columns_encode_each_element(lists: list) -> None:
    import pyarrow as pa

    frame = pd.DataFrame({"g": pd.Series(lists, dtype=pd.ArrowDtype(pa.list_(pa.int64())))})
    wf = Workflow([Categorify(["g"])]).fit(frame)
    out = wf.transform(frame)["g"]
    assert str(out.dtype) == "list<item: int64>[pyarrow]"
    # Reference: explode, value_counts, (count desc, value asc) order after 0, 1 and bucket 2.
    counts = pd.Series([v for x in lists if x for v in x if v is not None]).value_counts()
    order = sorted(counts.index, key=lambda v: (-counts[v], v))
    index = {v: 3 + i for i, v in enumerate(order)}
    expected = [None if x is None else [1 if v is None else index[v] for v in x] for x in lists]
    got = [None if x is pd.NA or x is None else list(x) for x in out.tolist()]
    assert got == expected
    assert "list" in wf.output_schema["g"]["tags"]
    assert wf.transform(frame.iloc[1:])["g"].tolist() == out.iloc[1:].tolist()


def test_python_lists_in_object_column_are_a_clear_error() -> None:
    frame = pd.DataFrame({"g": [["a"], ["b", "a"]]})
    with pytest.raises(DataError, match=r"'g' holds Python lists.*ArrowDtype"):
        Workflow([Categorify(["g"])]).fit(frame)


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(0, 3)), st.sampled_from(["a", "b"])),
        min_size=1,
        max_size=40,
    ).filter(lambda p: any(u is not None for u, _ in p)),
    threshold=st.integers(0, 3),
    cut=st.integers(0, 40),
)
def test_combo_encodes_pairs_by_frequency(pairs: list, threshold: int, cut: int) -> None:
    u, s = zip(*pairs, strict=True)
    frame = pd.DataFrame({"u": pd.Series(u, dtype="Int64"), "s": pd.Series(s, dtype="str")})
    op = CategorifyCombo([["u", "s"]], freq_threshold=threshold, num_buckets=2)
    op.prepare(frame.dtypes)
    op.finish_fit(op.merge_stats(op.partition_stats(frame.iloc[:cut], None),
                                 op.partition_stats(frame.iloc[cut:], None)))
    out = op.transform(frame, None)["u_s"]
    counts = frame.dropna().groupby(["u", "s"]).size()
    order = sorted(counts.index, key=lambda k: (-counts[k], k))
    kept = [k for k in order if counts[k] >= threshold]
    index = {k: 4 + i for i, k in enumerate(kept)}
    for (uu, ss), code in zip(pairs, out, strict=True):
        if uu is None:
            assert code == 1
        elif (uu, ss) in index:
            assert code == index[(uu, ss)]
        else:
            assert code in (2, 3)
    mapping = op.mapping("u_s")
    assert list(zip(mapping["u"], mapping["s"], strict=True)) == kept


def test_combo_round_trips(tmp_path) -> None:
    frame = pd.DataFrame({"u": [1, 1, 2, 2, 2], "s": ["a", "a", "a", "b", "b"]})
    wf = Workflow([CategorifyCombo([["u", "s"]])]).fit(frame)
    out = wf.transform(frame)
    assert out["u_s"].tolist() == [3, 3, 5, 4, 4]
    wf.save(tmp_path)
    pd.testing.assert_frame_equal(Workflow.load(tmp_path).transform(frame), out)
    unseen = wf.transform(pd.DataFrame({"u": [9], "s": ["z"]}))["u_s"].tolist()
    assert unseen == [2]


def test_combo_reads_a_string_as_one_column_name() -> None:
    """As every op does (column_list): a string is never split into its characters."""
    with pytest.raises(ConfigError, match="two or more columns"):
        CategorifyCombo("ab")
    assert CategorifyCombo(("a", "b")).groups == (("a", "b"),)


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 2**40), max_size=60))
def test_vocabulary_order_is_a_stable_sort_by_descending_count(counts: list[int]) -> None:
    from pipeline.features.stats.vocab import _by_descending_count

    values = np.array(counts, dtype=np.int64)
    np.testing.assert_array_equal(_by_descending_count(values),
                                  np.argsort(-values, kind="stable"))
