"""Saved workflows: format 2 round trips a graph; format 1 directories still load; a newer
format fails with a message that says to upgrade; damaged manifests name the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.features import (
    FORMAT_VERSION,
    AddTags,
    Categorify,
    FillMedian,
    Normalize,
    Rename,
    TargetEncoding,
    Workflow,
)

DATA = Path(__file__).parent / "data"


def frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0, 1, n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 30, n),
            "item_id": pd.Series(rng.choice(["a", "b", "c", "d"], n), dtype="str"),
            "x": x,
            "click": rng.integers(0, 2, n).astype(np.int8),
        }
    )


def graph_workflow() -> Workflow:
    return Workflow(
        (["user_id"] >> AddTags(None, tags=["user_id"]) >> Categorify(None))
        + (["item_id"] >> Categorify(None, num_buckets=2))
        + (["x"] >> FillMedian(None) >> Normalize(None))
        + (["x"] >> Rename(mapping={"x": "x_raw"}))
        + TargetEncoding(["user_id", ["user_id", "item_id"]], target="click", p_smooth=5.0)
        + ["click"]
    )


def test_graph_round_trip_is_exact(tmp_path: Path) -> None:
    df = frame()
    wf = graph_workflow().fit(df)
    wf.save(tmp_path)
    manifest = json.loads((tmp_path / "workflow.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 2
    assert [e["level"] for e in manifest["ops"]] == [0, 0, 0, 0, 1, 0, 0]
    loaded = Workflow.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.transform(df), wf.transform(df))
    assert loaded.output_schema == wf.output_schema
    assert loaded.output_schema["user_id"]["tags"] == ["user_id", "categorical"]
    # Serving needs no target.
    served = loaded.transform(df.drop(columns=["click"]).iloc[:5])
    assert list(served.columns) == [c for c in wf.output_schema if c != "click"]
    # A loaded graph refits as the same graph (not as a list of ops).
    other = frame(seed=1)
    pd.testing.assert_frame_equal(
        loaded.fit(other).transform(df), graph_workflow().fit(other).transform(df)
    )


def test_format_1_directory_loads_and_transforms_as_it_did() -> None:
    loaded = Workflow.load(DATA / "features_v1")
    inputs = pd.read_parquet(DATA / "features_v1_input.parquet")
    expected = pd.read_parquet(DATA / "features_v1_expected.parquet")
    pd.testing.assert_frame_equal(loaded.transform(inputs), expected)
    assert list(loaded.output_schema) == list(expected.columns)


def test_newer_format_and_damaged_manifests(tmp_path: Path) -> None:
    target = tmp_path / "wf"
    graph_workflow().fit(frame()).save(target)
    path = target / "workflow.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ConfigError, match=rf"format_version {FORMAT_VERSION + 1}.*Upgrade recpipe"):
        Workflow.load(target)
    path.write_text(json.dumps({k: v for k, v in manifest.items() if k != "outputs"}))
    with pytest.raises(ConfigError, match="incomplete or damaged.*outputs"):
        Workflow.load(target)
    broken = dict(manifest)
    broken["ops"] = [{**manifest["ops"][0], "type": "NoSuchOp"}, *manifest["ops"][1:]]
    path.write_text(json.dumps(broken))
    with pytest.raises(ConfigError, match=r"ops\[0\] has unknown type 'NoSuchOp'"):
        Workflow.load(target)
    path.write_text(json.dumps(manifest))
    shutil.rmtree(target / "stats")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        Workflow.load(target)
