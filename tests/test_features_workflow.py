"""Workflow behaviour on pandas: pass-through, schema, bad input, save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError, DataError
from pipeline.features import (
    FORMAT_VERSION,
    Categorify,
    FillMissing,
    Normalize,
    NotFittedError,
    TargetEncoding,
    Workflow,
)


def make_workflow() -> Workflow:
    return Workflow(
        [
            Categorify(["user_id", "item_id", "gender"], num_buckets=3),
            Normalize(["age"]),
            FillMissing(["age"], value=0.0),
            TargetEncoding(["item_id", ["user_id", "gender"]], target="relevant", p_smooth=2.0),
        ]
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 300
    age = rng.normal(35, 10, n)
    age[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 40, n),
            "item_id": pd.Series(rng.choice(["i1", "i2", "i3", "i4", None], n), dtype="str"),
            "gender": pd.Series(rng.choice(["F", "M"], n), dtype="str"),
            "age": age,
            "timestamp": np.arange(n, dtype=np.int64),
            "relevant": rng.integers(0, 2, n),
        }
    )


def test_given_the_example_workflow_expect_these_rows() -> None:
    frame = pd.DataFrame(
        {
            "user_id": [7, 7, 9],
            "item_id": ["x", "y", "x"],
            "age": [20.0, None, 40.0],
            "relevant": [1, 0, 0],
            "other": ["keep", "me", "please"],
        }
    )
    wf = Workflow(
        [
            Categorify(["user_id", "item_id"]),
            Normalize(["age"]),
            FillMissing(["age"], value=0.0),
            TargetEncoding(["item_id"], target="relevant", p_smooth=1.0),
        ]
    ).fit(frame)
    out = wf.transform(frame)
    expected = pd.DataFrame(
        {
            "user_id": np.array([3, 3, 4], dtype=np.int64),
            "item_id": np.array([3, 4, 3], dtype=np.int64),
            "age": np.array([-1.0, 0.0, 1.0], dtype=np.float32),
            "relevant": [1, 0, 0],
            "other": ["keep", "me", "please"],
            "TE_item_id_relevant": np.array([(1 + 1 / 3) / 3, (1 / 3) / 2, (1 + 1 / 3) / 3]),
        }
    )
    expected["TE_item_id_relevant"] = expected["TE_item_id_relevant"].astype(np.float32)
    pd.testing.assert_frame_equal(out, expected)


def test_output_schema(frame: pd.DataFrame) -> None:
    wf = make_workflow().fit(frame)
    schema = wf.output_schema
    out = wf.transform(frame)
    assert list(schema) == list(out.columns)
    assert {c: s["dtype"] for c, s in schema.items()} == {c: str(t) for c, t in out.dtypes.items()}
    assert schema["item_id"]["tags"] == ["categorical"]
    assert schema["item_id"]["cardinality"] == 2 + 3 + 4
    assert schema["age"]["tags"] == ["continuous"]
    assert schema["relevant"]["tags"] == ["target"]
    assert schema["timestamp"] == {"dtype": "int64", "tags": [], "cardinality": None, "ops": []}
    assert schema["TE_user_id_gender_relevant"]["tags"] == ["continuous", "target_encoding"]
    assert schema["TE_user_id_gender_relevant"]["source"] == ["user_id", "gender"]


def test_missing_column_names_column_op_and_present_columns(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError) as err:
        make_workflow().fit(frame.drop(columns=["gender"]))
    msg = str(err.value)
    assert "'gender'" in msg and "Categorify" in msg and "TargetEncoding" in msg
    assert "present" in msg and "'timestamp'" in msg


def test_transform_before_fit_and_empty_data(frame: pd.DataFrame) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        make_workflow().transform(frame)
    with pytest.raises(NotFittedError):
        make_workflow().save("/nonexistent")
    with pytest.raises(NotFittedError):
        _ = make_workflow().output_schema
    with pytest.raises(DataError, match="empty dataset"):
        make_workflow().fit(frame.iloc[:0])


def test_bad_workflows() -> None:
    with pytest.raises(ConfigError):
        Workflow([])
    with pytest.raises(ConfigError):
        Workflow(["Categorify"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="both write"):
        Workflow([TargetEncoding(["a"], target="y"), TargetEncoding(["a"], target="y", seed=1)])
    with pytest.raises(ConfigError, match="learns statistics"):
        Workflow([Categorify(["a"]), Categorify(["a"])])
    with pytest.raises(ConfigError, match="DataFrame"):
        Workflow([Normalize(["a"])]).fit([1, 2, 3])


def test_created_column_already_in_data_is_an_error(frame: pd.DataFrame) -> None:
    frame = frame.assign(TE_item_id_relevant=0.0)
    with pytest.raises(DataError, match="TE_item_id_relevant"):
        make_workflow().fit(frame)


def test_save_load_round_trip(frame: pd.DataFrame, tmp_path: Path) -> None:
    wf = make_workflow().fit(frame)
    wf.save(tmp_path / "wf")
    files = sorted(p.relative_to(tmp_path / "wf").as_posix() for p in (tmp_path / "wf").rglob("*"))
    assert files == [
        "stats",
        "stats/00_categorify",
        "stats/00_categorify/gender.parquet",
        "stats/00_categorify/item_id.parquet",
        "stats/00_categorify/user_id.parquet",
        "stats/01_normalize",
        "stats/01_normalize/moments.parquet",
        "stats/03_targetencoding",
        "stats/03_targetencoding/TE_item_id_relevant.parquet",
        "stats/03_targetencoding/TE_user_id_gender_relevant.parquet",
        "workflow.json",
    ]
    manifest = json.loads((tmp_path / "wf" / "workflow.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert [op["type"] for op in manifest["ops"]] == [
        "Categorify",
        "Normalize",
        "FillMissing",
        "TargetEncoding",
    ]
    params = manifest["ops"][0]["params"]
    assert params["columns"] == ["user_id", "item_id", "gender"]
    assert (params["freq_threshold"], params["num_buckets"]) == (0, 3)
    assert [op["reads"] for op in manifest["ops"][1:3]] == [{"age": -1}, {"age": 1}]
    vocab = pd.read_parquet(tmp_path / "wf/stats/00_categorify/item_id.parquet")
    assert list(vocab.columns) == ["value", "count", "index"]
    assert vocab["count"].sum() == frame["item_id"].notna().sum()

    loaded = Workflow.load(tmp_path / "wf")
    assert loaded.output_schema == wf.output_schema
    assert loaded.input_schema == wf.input_schema
    pd.testing.assert_frame_equal(loaded.transform(frame), wf.transform(frame))
    unseen = frame.iloc[:5].assign(item_id=["new", None, "i1", "zz", "i2"], user_id=999)
    pd.testing.assert_frame_equal(loaded.transform(unseen), wf.transform(unseen))
    pd.testing.assert_frame_equal(
        loaded.categorify_mapping("user_id"), wf.categorify_mapping("user_id")
    )


def test_fill_mean_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, None, 5.0]})
    wf = Workflow([FillMissing(["a"], value=None)]).fit(frame)
    wf.save(tmp_path)
    assert Workflow.load(tmp_path).transform(frame)["a"].tolist() == [1.0, 3.0, 5.0]


def test_no_pickle_in_saved_workflow(frame: pd.DataFrame, tmp_path: Path) -> None:
    make_workflow().fit(frame).save(tmp_path)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert path.suffix in {".json", ".parquet"}
            assert not path.read_bytes().startswith(b"\x80")  # pickle protocol 2+ header


def test_newer_format_version_asks_to_upgrade(frame: pd.DataFrame, tmp_path: Path) -> None:
    make_workflow().fit(frame).save(tmp_path)
    manifest_path = tmp_path / "workflow.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="Upgrade recpipe"):
        Workflow.load(tmp_path)
    manifest["format_version"] = "1"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="integer"):
        Workflow.load(tmp_path)
    with pytest.raises(ConfigError, match="workflow.json"):
        Workflow.load(tmp_path / "missing")


def test_loaded_workflow_on_frame_lacking_inputs(frame: pd.DataFrame, tmp_path: Path) -> None:
    make_workflow().fit(frame).save(tmp_path)
    loaded = Workflow.load(tmp_path)
    with pytest.raises(DataError) as err:
        loaded.transform(frame.drop(columns=["age", "gender", "relevant"]))
    msg = str(err.value)
    assert "'gender'" in msg and "'age'" in msg and "'relevant'" not in msg.split("present")[0]
    # The target is not needed at inference time.
    out = loaded.transform(frame.drop(columns=["relevant"]))
    assert "TE_item_id_relevant" in out.columns
