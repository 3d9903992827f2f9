"""The feature reader: Parquet row groups as Dask partitions, strings dictionary-encoded, and
every op giving the same result on those columns as on plain strings."""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import DataError
from pipeline.features import (
    Categorify,
    CategorifyCombo,
    DifferenceLag,
    FillMissing,
    HashBucket,
    HashedCross,
    JoinGroupby,
    TargetEncoding,
    Workflow,
)
from pipeline.features.backend import read_parquet
from pipeline.features.stats.keys import STR_DTYPE, is_string_dictionary, string_dictionary
from pipeline.features.stats.vocab import ValueCounts, Vocabulary

pytestmark = pytest.mark.usefixtures("dask_client")


def log(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "lyon", "oslo", "rome", "kyiv"], n).astype(object)
    city[rng.random(n) < 0.1] = None
    device = rng.choice(["ios", "android", "web"], n).astype(object)
    region = rng.choice(["north", "south"], n).astype(object)
    region[rng.random(n) < 0.2] = None
    return pd.DataFrame({
        "user": rng.choice([f"u{i}" for i in range(30)], n).astype(object),
        "city": pd.Series(city, dtype="str"),
        "device": pd.Series(device, dtype="str"),
        "region": pd.Series(region, dtype="str"),
        "item_id": rng.integers(0, 50, n),
        "price": rng.lognormal(0, 1, n),
        "ts": np.sort(rng.integers(0, 10_000, n)),
        "click": rng.integers(0, 2, n).astype(np.int8),
    })


def test_strings_arrive_dictionary_encoded_and_the_rest_as_dask_reads_it(tmp_path: Path) -> None:
    log().to_parquet(tmp_path / "a.parquet", row_group_size=100)
    ours = read_parquet(str(tmp_path / "a.parquet"), backend="pandas")
    dasks = dd.read_parquet(str(tmp_path / "a.parquet"))
    assert ours.npartitions == 1  # 400 rows: one partition of whole row groups
    strings = ("user", "city", "device", "region")
    assert all(is_string_dictionary(ours.dtypes[c]) for c in strings)
    got = ours.compute()
    assert all(is_string_dictionary(got.dtypes[c]) for c in strings)
    decoded = got.astype({c: dasks.dtypes[c] for c in strings})
    pd.testing.assert_frame_equal(decoded, dasks.compute())
    assert list(ours[["price", "city"]].compute().columns) == ["price", "city"]


def test_large_strings_read_as_the_dictionaries_the_partitions_hold(tmp_path: Path) -> None:
    table = pa.table({"s": pa.array(["a", None, "b", "a"], pa.large_string()), "x": range(4)})
    pq.write_table(table, tmp_path / "a.parquet")
    ddf = read_parquet(str(tmp_path / "a.parquet"), backend="pandas")
    got = ddf.compute()
    assert ddf.dtypes.to_dict() == got.dtypes.to_dict()
    assert is_string_dictionary(got.dtypes["s"])
    assert got["s"].isna().tolist() == [False, True, False, False]
    assert got["s"].dropna().tolist() == ["a", "b", "a"]


def test_a_file_without_the_first_files_columns_is_named(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1, 2], "s": ["x", "y"]}).to_parquet(tmp_path / "p0.parquet")
    pd.DataFrame({"a": [3, 4]}).to_parquet(tmp_path / "p1.parquet")
    ddf = read_parquet(str(tmp_path), backend="pandas")
    with pytest.raises(DataError, match=r"p1\.parquet lacks column\(s\) \['s'\]"):
        ddf.compute()


def test_a_stored_index_comes_back_as_pandas_wrote_it(tmp_path: Path) -> None:
    frame = log(50).set_index("ts")
    frame.to_parquet(tmp_path / "a.parquet")
    got = read_parquet(str(tmp_path / "a.parquet"), backend="pandas").compute()
    assert got.index.name == "ts" and got.index.equals(frame.index)
    assert got["price"].equals(frame["price"])


def test_hive_partitions_and_empty_files_go_through_dasks_reader(tmp_path: Path) -> None:
    frame = log(60)
    frame["day"] = np.repeat(["d1", "d2"], 30)
    frame.to_parquet(tmp_path / "hive", partition_cols=["day"])
    ddf = read_parquet(str(tmp_path / "hive"), backend="pandas")
    assert "day" in ddf.columns and len(ddf.compute()) == 60
    log(0).to_parquet(tmp_path / "empty.parquet")
    assert len(read_parquet(str(tmp_path / "empty.parquet"), backend="pandas").compute()) == 0


def dictionary_series(values: list[str | None], chunk: int) -> pd.Series:
    """``values`` as an Arrow dictionary column of several chunks, each encoded on its own."""
    chunks = [pa.array(values[i:i + chunk], type=pa.string()).dictionary_encode()
              for i in range(0, len(values), chunk)]
    chunks = chunks or [pa.array([], pa.string()).dictionary_encode()]
    return pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array(chunks)))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.sampled_from(["a", "b", "c", "é", "", None]), max_size=40),
       chunk=st.integers(1, 12), seen=st.integers(0, 40), buckets=st.integers(1, 3))
def test_counts_and_codes_of_a_dictionary_column_equal_those_of_its_strings(
    values: list[str | None], chunk: int, seen: int, buckets: int
) -> None:
    plain = pd.Series(pd.array(values, dtype=STR_DTYPE))
    encoded = dictionary_series(values, chunk)
    expected = ValueCounts.from_partition(plain, "str", "test")
    got = ValueCounts.from_partition(encoded, "str", "test")
    assert got.nulls == expected.nulls
    pd.testing.assert_series_equal(got.counts, expected.counts)
    fitted = ValueCounts.from_partition(plain.iloc[:seen], "str", "test")
    if fitted.counts.empty:
        return
    vocab = Vocabulary.from_counts(fitted, 0, buckets)
    assert np.array_equal(vocab.encode(encoded, "test"), vocab.encode(plain, "test"))


def test_a_dictionary_with_repeats_and_a_null_entry_reads_as_its_values() -> None:
    array = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, None, 3], pa.int32()),
                                           pa.array(["x", None, "x", "y"]))
    series = pd.Series(pd.arrays.ArrowExtensionArray(array))
    codes, values = string_dictionary(series)
    assert codes.tolist() == [0, 4, 2, 4, 3] and values.to_pylist() == ["x", None, "x", "y"]
    counts = ValueCounts.from_partition(series, "str", "test")
    assert counts.nulls == 2 and counts.counts.to_dict() == {"x": 2, "y": 1}
    plain = pd.Series(pd.array(["x", None, "x", None, "y"], dtype=STR_DTYPE))
    vocab = Vocabulary.from_counts(ValueCounts.from_partition(plain.iloc[:1], "str", "t"), 0, 2)
    assert np.array_equal(vocab.encode(series, "t"), vocab.encode(plain, "t"))


def string_ops_workflow() -> Workflow:
    """Every op that keys on or reads a string column."""
    return Workflow(
        (["user"] >> Categorify(None, freq_threshold=2, num_buckets=2))
        + (["device", "city"] >> Categorify(None, encode_type="joint"))
        + CategorifyCombo([["city", "device"]])
        + TargetEncoding(["city", ["user", "device"]], target="click", kfold=3)
        + HashedCross([["city", "item_id"]], num_buckets=11)
        + JoinGroupby(["device"], cont_cols=["price"], stats=["count", "mean"])
        + DifferenceLag("user", "ts")
        + (["region"] >> FillMissing(None, value="nowhere") >> HashBucket(None, num_buckets=5))
    )


def test_every_string_op_gives_the_same_features_from_dictionary_columns(tmp_path: Path) -> None:
    """Fitted on the reader's dictionary columns or on plain strings, fitted on Dask, applied
    to pandas: the same statistics and the same features, value for value."""
    frame = log(600, seed=3)
    frame.to_parquet(tmp_path / "a.parquet", row_group_size=150)
    encoded = read_parquet(str(tmp_path / "a.parquet"), backend="pandas", partition_rows=300)
    plain = dd.from_pandas(frame, npartitions=2)
    assert is_string_dictionary(encoded.dtypes["city"])
    from_encoded = string_ops_workflow().fit(encoded)
    from_plain = string_ops_workflow().fit(plain)
    expected = from_plain.transform(frame)
    pd.testing.assert_frame_equal(from_encoded.transform(frame), expected)
    second = encoded.partitions[1].compute()  # a frame with dictionary columns, in pandas
    pd.testing.assert_frame_equal(from_encoded.transform(second).reset_index(drop=True),
                                  from_plain.transform(frame.iloc[300:]).reset_index(drop=True))
    distributed = from_encoded.transform(encoded).partitions[1].compute()
    pd.testing.assert_frame_equal(distributed, from_encoded.transform(second))


def test_string_statistics_of_the_benchmark_layout_match(tmp_path: Path) -> None:
    """Dictionaries that differ between row groups (and files) merge to the same vocabulary."""
    rng = np.random.default_rng(7)
    for i in range(3):
        values = rng.choice([f"{v:08x}" for v in range(300)], 500).astype(object)
        values[rng.random(500) < 0.05] = None
        pq.write_table(pa.table({"c": pa.array(values, pa.string())}),
                       tmp_path / f"p{i}.parquet", row_group_size=128)
    files = sorted(str(p) for p in tmp_path.glob("*.parquet"))
    encoded = read_parquet(files, backend="pandas", partition_rows=256)
    plain = dd.read_parquet(files)
    a = Workflow(["c"] >> Categorify(None, max_size=100)).fit(encoded)
    b = Workflow(["c"] >> Categorify(None, max_size=100)).fit(plain)
    pd.testing.assert_frame_equal(a.plan.steps[0].op.mapping("c"), b.plan.steps[0].op.mapping("c"))
