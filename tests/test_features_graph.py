"""The feature graph: >> chains, + concatenation, selectors by name and tag, the output schema,
the structural ops (Rename, AddTags, Filter) and the errors of a bad graph."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError, DataError
from pipeline.features import (
    AddTags,
    Categorify,
    FillMedian,
    FillMissing,
    Filter,
    Normalize,
    Rename,
    TargetEncoding,
    Workflow,
    tag,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3],
            "item_id": pd.Series(["a", "b", "a", None], dtype="str"),
            "x": [1.0, np.nan, 3.0, 5.0],
            "click": [1, 0, 0, 1],
            "unused": ["p", "q", "r", "s"],
        }
    )


def test_given_a_chain_expect_normalize_fitted_on_filled_values(frame: pd.DataFrame) -> None:
    wf = Workflow(["x"] >> FillMedian(None) >> Normalize(None)).fit(frame)
    # median of [1, 3, 5] is 3; filled [1, 3, 3, 5]: mean 3, population std sqrt(2)
    expected = ((np.array([1.0, 3.0, 3.0, 5.0]) - 3.0) / np.sqrt(2.0)).astype(np.float32)
    out = wf.transform(frame)
    assert list(out.columns) == ["x"]
    np.testing.assert_array_equal(out["x"].to_numpy(), expected)
    assert [s.level for s in wf.plan.steps] == [0, 1]


def test_branches_read_the_version_they_were_built_on(frame: pd.DataFrame) -> None:
    graph = (
        (["user_id"] >> Categorify(None))
        + TargetEncoding(["user_id"], target="click", p_smooth=1.0, kfold=1)
        + (["x"] >> Rename(postfix="_raw"))
        + (["x"] >> FillMissing(None, value=0.0))
        + ["click"]
    )
    out = Workflow(graph).fit(frame).transform(frame)
    assert list(out.columns) == ["user_id", "TE_user_id_click", "x_raw", "x", "click"]
    # Categorify replaced user_id, yet TargetEncoding read the raw ids: user 1 -> (1+0.5)/3.
    np.testing.assert_allclose(out["TE_user_id_click"], [0.5, 0.5, 0.25, 0.75])
    assert out["user_id"].tolist() == [3, 3, 4, 5]
    np.testing.assert_array_equal(out["x_raw"], frame["x"])
    assert out["x"].tolist() == [1.0, 0.0, 3.0, 5.0]


def test_selectors_by_tag_and_output_schema_tags(frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="parenthesise"):
        _ = tag("id") >> Categorify(None) + ["click"]  # '+' binds tighter than '>>'
    graph = (
        (tag("id") >> Categorify(None))
        + (["item_id"] >> AddTags(None, tags=["item_id"]))
        + ["click"]
    )
    with pytest.raises(ConfigError, match="different versions of column 'item_id'"):
        Workflow(graph, tags={"user_id": ["id"], "item_id": ["id"]}).fit(frame)
    graph = (
        (tag("id") >> AddTags(None, tags=["categorical_id"]) >> Categorify(None))
        + (tag("continuous") >> Normalize(None))
        + ["click"]
    )
    wf = Workflow(graph, tags={"user_id": ["id", "user_id"], "item_id": ["id", "item_id"],
                               "x": ["continuous"]}).fit(frame)
    schema = wf.output_schema
    assert list(schema) == ["user_id", "item_id", "x", "click"]
    assert schema["user_id"]["tags"] == ["id", "user_id", "categorical_id", "categorical"]
    assert schema["item_id"]["tags"] == ["id", "item_id", "categorical_id", "categorical"]
    # 0 pad, 1 null, 1 OOV bucket, then 2 items: an embedding table of 5 rows, indices 0..4
    assert schema["item_id"]["cardinality"] == 5 and schema["item_id"]["value_range"] == [0, 4]
    assert schema["x"]["tags"] == ["continuous"] and schema["x"]["ops"] == ["Normalize"]
    assert schema["click"]["tags"] == []
    out = wf.transform(frame)
    assert {c: str(t) for c, t in out.dtypes.items()} == {c: s["dtype"] for c, s in schema.items()}


def test_target_tag_and_filter_drops_rows_for_later_steps(frame: pd.DataFrame) -> None:
    graph = (["x"] >> Filter(None, ">", 1.5) >> Normalize(None)) + TargetEncoding(
        ["user_id"], target="click", kfold=1
    ) + ["click"]
    wf = Workflow(graph).fit(frame)
    out = wf.transform(frame)
    # Rows 0 (x=1) and 1 (x=NaN) are gone, for Normalize's fit and for every output column.
    assert out.index.tolist() == [2, 3]
    np.testing.assert_array_equal(out["x"], np.array([-1.0, 1.0], dtype=np.float32))
    assert wf.output_schema["click"]["tags"] == ["target"]


def test_list_form_still_works_and_passes_columns_through(frame: pd.DataFrame) -> None:
    wf = Workflow([Categorify(["user_id"]), Normalize(["x"])]).fit(frame)
    assert list(wf.transform(frame).columns) == list(frame.columns)


def test_graph_errors_name_the_column_and_the_op(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"'nope'.*missing.*Columns present"):
        Workflow(["nope"] >> Normalize(None)).fit(frame)
    with pytest.raises(DataError, match=r"Normalize.*'unused'.*not numeric"):
        Workflow(["unused"] >> Normalize(None)).fit(frame)
    with pytest.raises(ConfigError, match="no input column is tagged 'missing'"):
        Workflow(tag("missing") >> Normalize(None)).fit(frame)
    with pytest.raises(ConfigError, match="names columns"):
        Workflow(["x"] >> Normalize(["click"])).fit(frame)
    with pytest.raises(ConfigError, match="op instance"):
        _ = tag("t") >> Normalize  # type: ignore[operator]
    with pytest.raises(ConfigError, match="has no columns"):
        Workflow([Normalize(None)])
    with pytest.raises(DataError, match=r"'x_raw'.*Rename"):
        Workflow(["x"] >> Rename(postfix="_raw")).fit(frame.assign(x_raw=1.0))
    with pytest.raises(ConfigError, match="feature graph"):
        Workflow(["x"])  # plain names are not a graph: select them with a node
    with pytest.raises(DataError, match=r"tags column\(s\) \['absent'\]"):
        Workflow(["x"] >> Normalize(None), tags={"absent": ["t"]}).fit(frame)


def test_saved_graph_on_a_frame_with_other_columns(frame: pd.DataFrame, tmp_path) -> None:
    wf = Workflow((["user_id"] >> Categorify(None)) + (["x"] >> Normalize(None))).fit(frame)
    wf.save(tmp_path)
    loaded = Workflow.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.transform(frame), wf.transform(frame))
    with pytest.raises(DataError, match=r"'x' \(read by Normalize\)"):
        loaded.transform(frame.drop(columns=["x"]))
    with pytest.raises(DataError, match=r"'user_id'.*int.*str"):
        loaded.transform(frame.assign(user_id=frame["user_id"].astype(str)))
