"""JoinGroupby, DifferenceLag, HashBucket, HashedCross and UserFunction against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, DataError
from pipeline.features import (
    DifferenceLag,
    HashBucket,
    HashedCross,
    JoinGroupby,
    UserFunction,
    Workflow,
)

rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 4)),
        st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
        st.one_of(st.none(), st.floats(-100, 100, allow_nan=False)),
        st.integers(0, 20),
    ),
    min_size=1,
    max_size=40,
).filter(lambda r: any(u is not None and s is not None for u, s, _, _ in r))


def frame_of(data: list) -> pd.DataFrame:
    u, s, x, t = zip(*data, strict=True)
    return pd.DataFrame(
        {
            "u": pd.Series(u, dtype="Int64"),
            "s": pd.Series(s, dtype="str"),
            "x": pd.Series(x, dtype="float64"),
            "t": np.array(t, dtype=np.int64),
        }
    )


@settings(max_examples=30, deadline=None)
@given(data=rows, cut=st.integers(0, 40))
def test_join_groupby_matches_pandas(data: list, cut: int) -> None:
    frame = frame_of(data)
    op = JoinGroupby(["u", ["u", "s"]], cont_cols=["x"], stats=["count", "sum", "mean", "std"])
    # Fit on two chunks merged (what the tree reduction does), transform the whole.
    op.prepare(frame.dtypes)
    op.finish_fit(op.merge_stats(op.partition_stats(frame.iloc[:cut], None),
                                 op.partition_stats(frame.iloc[cut:], None)))
    out = op.transform(frame, None)
    for keys, name in ((["u"], "u"), (["u", "s"], "u_s")):
        grouped = frame.dropna(subset=keys).groupby(keys)
        ref = frame[keys].merge(
            grouped.agg(count=("t", "size"), sum=("x", "sum"), mean=("x", "mean"),
                        std=("x", "std")).reset_index(),
            on=keys, how="left",
        )
        assert out[f"{name}_count"].tolist() == ref["count"].fillna(0).astype(int).tolist()
        has = frame[keys].notna().all(axis=1) & frame.groupby(keys, dropna=False)["x"].transform(
            "count").gt(0)
        for stat in ("sum", "mean", "std"):
            got = out[f"{name}_x_{stat}"]
            assert got.dtype == np.float32
            # pandas: the sum of no values is 0, their mean and std NaN; unseen/null keys: NaN.
            exp = ref[stat] if stat == "sum" else ref[stat].where(has)
            exp = exp.astype("float32").to_numpy()
            np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-3, equal_nan=True)


@settings(max_examples=50, deadline=None)
@given(data=rows)
def test_difference_lag_matches_pandas(data: list) -> None:
    frame = frame_of(data)
    out = Workflow([DifferenceLag("u", "t")]).fit(frame).transform(frame)["t_lag_1"]
    srt = frame.sort_values(["u", "t"], kind="stable")
    ref = srt.groupby("u")["t"].diff().reindex(frame.index).astype("float64")
    pd.testing.assert_series_equal(out, ref, check_names=False)


@settings(max_examples=40, deadline=None)
@given(data=rows, n=st.integers(1, 50))
def test_hashing_ops_are_stable_and_in_range(data: list, n: int) -> None:
    frame = frame_of(data)
    wf = Workflow([HashBucket(["u", "s"], n), HashedCross([["u", "s"]], n)]).fit(frame)
    out = wf.transform(frame)
    for c in ("u", "s", "u_X_s"):
        assert out[c].dtype == np.int64
        assert out[c].between(1, n + 1).all()
        assert wf.output_schema[c]["cardinality"] == n + 2
    assert (out["s"][frame["s"].isna()] == 1).all()
    assert (out["u_X_s"][frame["u"].isna() | frame["s"].isna()] == 1).all()
    # Equal values, equal buckets; any subset of rows gives the same rows (parity).
    for c in ("u", "s"):
        firsts = out[c].groupby(frame[c]).nunique()
        assert (firsts <= 1).all()
    half = frame.iloc[::2]
    pd.testing.assert_frame_equal(wf.transform(half), out.iloc[::2])
    # Another spelling of the same ints (float) hashes alike.
    floats = frame.astype({"u": "float64"})
    assert wf.transform(floats)["u"].tolist() == out["u"].tolist()


def test_hash_bucket_reference_value() -> None:
    frame = pd.DataFrame({"s": ["x", None]})
    out = Workflow([HashBucket(["s"], 7)]).fit(frame).transform(frame)["s"].tolist()
    expected = 2 + int(pd.util.hash_array(np.array(["x"], dtype=object))[0] % 7)
    assert out == [expected, 1]


def add_one(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"x_plus": frame["x"] + 1})


def test_user_function_by_import_path(tmp_path) -> None:
    frame = pd.DataFrame({"x": [1.0, None, 3.0]})
    op = UserFunction(["x"], "tests.test_features_ops_groupby:add_one", outputs=["x_plus"])
    wf = Workflow([op]).fit(frame)
    out = wf.transform(frame)
    pd.testing.assert_series_equal(out["x_plus"], frame["x"] + 1, check_names=False)
    wf.save(tmp_path)
    assert "add_one" in (tmp_path / "workflow.json").read_text()
    pd.testing.assert_frame_equal(Workflow.load(tmp_path).transform(frame), out)
    with pytest.raises(ConfigError, match="import path"):
        UserFunction(["x"], "not a path")
    with pytest.raises(ConfigError, match="no function"):
        UserFunction(["x"], "tests.test_features_ops_groupby:nothing_here")
    bad = UserFunction(["x"], "tests.test_features_ops_groupby:add_one", outputs=["y"])
    with pytest.raises(DataError, match=r"lacks column\(s\) \['y'\]"):
        Workflow([bad]).fit(frame).transform(frame)


def test_bad_input_errors() -> None:
    frame = pd.DataFrame({"u": [1, 2], "x": ["a", "b"], "t": ["a", "b"]})
    with pytest.raises(DataError, match=r"JoinGroupby.*'x'.*not numeric"):
        Workflow([JoinGroupby(["u"], cont_cols=["x"], stats=["mean"])]).fit(frame)
    with pytest.raises(DataError, match=r"DifferenceLag.*'t'.*timestamp"):
        Workflow([DifferenceLag("u", "t")]).fit(frame)
    with pytest.raises(DataError, match=r"JoinGroupby.*\['u'\].*no non-null"):
        Workflow([JoinGroupby(["u"])]).fit(pd.DataFrame({"u": pd.Series([None], dtype="Int64")}))
    with pytest.raises(ConfigError):
        JoinGroupby(["u"], stats=["median"])
    with pytest.raises(ConfigError):
        HashedCross([["u"]], 10)
