"""Workflow files: valid ones load with resolved paths; invalid ones name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import load_workflow, parse_workflow
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = {
    "name": "shop",
    "data": {"interactions": {"path": "logs",
                              "columns": {"user": "u", "item": "i", "timestamp": "t"}}},
}


def test_shipped_workflow_loads_with_paths_relative_to_the_file() -> None:
    spec = load_workflow(ROOT / "workflows" / "movielens.yaml")
    assert spec.name == "movielens"
    assert spec.data.interactions.path == ROOT / "data" / "movielens-100k" / "interactions"
    assert spec.run.dir == ROOT / "runs"
    assert [op.op for op in spec.features] == ["categorify", "normalize", "target_encoding"]
    assert spec.namespace == "movielens"


def test_minimal_workflow_gets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    spec = load_workflow(path)
    assert spec.data.interactions.path == tmp_path / "logs"
    assert spec.recommend.k == 20
    assert spec.cluster.kind == "local"


def test_unknown_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'ranker.num_boost_rounds'.*"
                                          r"did you mean 'num_boost_round'"):
        parse_workflow({**MINIMAL, "ranker": {"num_boost_rounds": 10}})


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown top-level key 'recomend'.*'recommend'"):
        parse_workflow({**MINIMAL, "recomend": {"k": 5}})


def test_missing_column_mapping_says_what_to_add() -> None:
    raw = {"name": "shop", "data": {"interactions": {"path": "logs",
                                                     "columns": {"item": "i", "timestamp": "t"}}}}
    with pytest.raises(ConfigError, match=r"missing key 'data.interactions.columns.user': name "
                                          r"the interactions column that holds the user id"):
        parse_workflow(raw)


def test_unknown_key_inside_a_feature_op() -> None:
    raw = {**MINIMAL, "features": [{"op": "categorify", "colums": ["u"]}]}
    with pytest.raises(ConfigError, match=r"colums.*did you mean 'columns'"):
        parse_workflow(raw)


def test_wrong_type_names_key_and_value() -> None:
    with pytest.raises(ConfigError, match=r"'recommend.k'.*got 'many'"):
        parse_workflow({**MINIMAL, "recommend": {"k": "many"}})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_workflow(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_workflow(bad)


def test_address_cluster_needs_an_address() -> None:
    with pytest.raises(ConfigError, match="needs cluster.address"):
        parse_workflow({**MINIMAL, "cluster": {"kind": "address"}})
