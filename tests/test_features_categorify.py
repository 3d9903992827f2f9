"""Categorify: NVTabular layout (0 pad, 1 null, OOV buckets, vocabulary by frequency)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, DataError
from pipeline.features import Categorify, Workflow


def encode(values: list, **params) -> list[int]:
    frame = pd.DataFrame({"c": values})
    return Workflow([Categorify(["c"], **params)]).fit(frame).transform(frame)["c"].tolist()


def test_strings_by_descending_frequency_with_null_at_1() -> None:
    # b x3, a x2, c x1 -> b=3, a=4, c=5 after pad 0, null 1 and one OOV bucket 2.
    assert encode(["b", "a", "b", None, "c", "a", "b"]) == [3, 4, 3, 1, 5, 4, 3]


def test_ties_are_broken_by_value() -> None:
    assert encode(["y", "x", "z", "x", "y", "z"]) == [4, 3, 5, 3, 4, 5]
    assert encode([30, 10, 20]) == [5, 3, 4]


def test_int_column_with_nulls_and_int64_serving_frame() -> None:
    train = pd.DataFrame({"c": [10, 20, 10, None]})  # float64 because of the null
    wf = Workflow([Categorify(["c"])]).fit(train)
    assert wf.transform(train)["c"].tolist() == [3, 4, 3, 1]
    serve = pd.DataFrame({"c": np.array([20, 10, 99], dtype=np.int64)})
    out = wf.transform(serve)
    assert out["c"].tolist() == [4, 3, 2]
    assert out["c"].dtype == np.int64


def test_unseen_and_rare_values_hash_into_oov_buckets() -> None:
    frame = pd.DataFrame({"c": ["a", "a", "a", "b", "b", "c"]})
    wf = Workflow([Categorify(["c"], freq_threshold=2, num_buckets=4)]).fit(frame)
    # Buckets are 2..5, vocabulary starts at 6: a=6, b=7; c (seen once) and z (never seen) hash.
    expected = {v: 2 + int(pd.util.hash_array(np.array([v], dtype=object))[0] % 4) for v in "cz"}
    out = wf.transform(pd.DataFrame({"c": ["a", "b", "c", "z", None]}))["c"].tolist()
    assert out == [6, 7, expected["c"], expected["z"], 1]
    assert wf.output_schema["c"]["cardinality"] == 8


def test_reverse_mapping_and_counts() -> None:
    frame = pd.DataFrame({"c": ["b", "a", "b", None, "c", "a", "b"]})
    wf = Workflow([Categorify(["c"], freq_threshold=2)]).fit(frame)
    mapping = wf.categorify_mapping("c")
    assert mapping.index.tolist() == [3, 4]
    assert mapping["value"].tolist() == ["b", "a"]
    assert mapping["count"].tolist() == [3, 2]
    with pytest.raises(ConfigError, match="not categorified"):
        wf.categorify_mapping("nope")


def test_string_dtype_spellings_encode_alike() -> None:
    frame = pd.DataFrame({"c": pd.Series(["a", "b", "a", None], dtype="str")})
    wf = Workflow([Categorify(["c"])]).fit(frame)
    for dtype in ("str", "string", object):
        out = wf.transform(frame.astype({"c": dtype}))
        assert out["c"].tolist() == [3, 4, 3, 1]


def test_serving_frame_of_another_kind_is_a_clear_error() -> None:
    wf = Workflow([Categorify(["c"])]).fit(pd.DataFrame({"c": [1, 2, 3]}))
    with pytest.raises(DataError, match=r"'c' was fitted on int values.*cast"):
        wf.transform(pd.DataFrame({"c": ["1"]}))
    with pytest.raises(DataError, match="non-integer"):
        wf.transform(pd.DataFrame({"c": [1.5]}))


@pytest.mark.parametrize("params", [{"num_buckets": 0}, {"freq_threshold": -1}, {"columns": []}])
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ConfigError):
        Categorify(**{"columns": ["c"], **params})


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.sampled_from(list("abcdefg"))), min_size=1).filter(
        lambda v: any(x is not None for x in v)
    ),
    num_buckets=st.integers(1, 5),
    freq_threshold=st.integers(0, 3),
)
def test_layout_property(values: list, num_buckets: int, freq_threshold: int) -> None:
    frame = pd.DataFrame({"c": pd.Series(values, dtype="str")})
    wf = Workflow([Categorify(["c"], num_buckets=num_buckets, freq_threshold=freq_threshold)])
    out = wf.fit(frame).transform(frame)["c"].to_numpy()
    first = 2 + num_buckets
    counts = frame["c"].value_counts()
    vocab = counts[counts >= freq_threshold]
    # Nulls -> 1, never 0; vocabulary values -> first.. in (count desc, value asc) order.
    assert (out[frame["c"].isna().to_numpy()] == 1).all()
    assert (out >= 1).all()
    assert out.max(initial=0) < wf.output_schema["c"]["cardinality"]
    order = sorted(vocab.index, key=lambda v: (-vocab[v], v))
    expected = {v: first + i for i, v in enumerate(order)}
    for raw, code in zip(frame["c"], out, strict=True):
        if isinstance(raw, str):
            assert code == expected.get(raw, code)
            if raw not in expected:
                assert 2 <= code < first
    assert wf.categorify_mapping("c")["value"].tolist() == order


@settings(max_examples=60, deadline=None)
@given(vocab=st.lists(st.text(max_size=4), min_size=1, max_size=40, unique=True),
       queries=st.lists(st.text(max_size=4), max_size=60))
def test_string_lookups_agree_for_small_and_large_vocabularies(vocab: list, queries: list) -> None:
    """Both string lookups (probe the vocabulary's hash, or hash the frame's distinct values
    and probe them with the vocabulary, for vocabularies about the frame's size) find what a
    dict finds."""
    from pipeline.features.stats.keys import STR_DTYPE
    from pipeline.features.stats.vocab import ValueCounts, Vocabulary

    counts = ValueCounts.from_partition(pd.Series(vocab, dtype="str"), "str", "t")
    table = Vocabulary.from_counts(counts, 1, 2)
    where = {v: i for i, v in enumerate(table.values)}
    values = pd.Index(queries, dtype=STR_DTYPE)
    expected = [where.get(q, -1) for q in queries]
    np.testing.assert_array_equal(table._positions(values), np.array(expected, dtype=np.int64))
