"""Fitted plans reach the workers through a memory-mapped file when the workers can read it:
the same results as through the graph, read-only views of the file, stale files swept."""

from __future__ import annotations

import gc
import os
import pickle
import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.features import Categorify, FillMedian, Normalize, TargetEncoding, Workflow, shipping
from pipeline.features.stats.te_stats import KeyRanges, TargetStats


def test_plan_file_round_trip_maps_arrays_without_copying(tmp_path: Path) -> None:
    frame = pd.DataFrame({"u": np.arange(1000) % 37, "y": np.arange(1000) % 2 * 1.0})
    stats = TargetStats.from_partition(frame, ["u"], ["int"], "y", None, 1, "t")
    obj = {"ids": np.arange(300_000), "names": pd.Index(["a", "bé", None], dtype="str"),
           "stats": stats}
    handle = shipping.write_plan(obj, tmp_path, min_bytes=0)
    assert handle is not None and Path(handle.path).exists()
    copy = pickle.loads(pickle.dumps(handle))  # what a worker receives: a small handle
    assert len(pickle.dumps(handle)) < 500
    loaded = copy.load()
    assert copy.load() is loaded  # mapped once per process
    np.testing.assert_array_equal(loaded["ids"], obj["ids"])
    assert not loaded["ids"].flags.writeable and not loaded["ids"].flags.owndata
    pd.testing.assert_index_equal(loaded["names"], obj["names"])
    np.testing.assert_array_equal(loaded["stats"].key, stats.key)
    np.testing.assert_array_equal(loaded["stats"].sum, stats.sum)
    path = handle.path
    del copy
    gc.collect()
    assert Path(path).exists()  # copies never remove the file; its owner does
    del handle
    gc.collect()
    assert not Path(path).exists()


def test_small_objects_stay_in_the_graph(tmp_path: Path) -> None:
    assert shipping.write_plan({"x": np.arange(10)}, tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_a_directory_others_can_write_to_is_not_used(tmp_path: Path) -> None:
    """Workers unpickle plan files: a group- or world-writable directory could feed them code."""
    shared = tmp_path / "open"
    shared.mkdir()
    shared.chmod(0o777)
    assert shipping.write_plan({"x": np.arange(10)}, shared, min_bytes=0) is None
    assert list(shared.iterdir()) == []


def test_files_of_killed_processes_are_swept(tmp_path: Path) -> None:
    stale, fresh = tmp_path / "plan-old.bin", tmp_path / "plan-new.bin"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - shipping.STALE_AFTER_S - 60
    os.utime(stale, (old, old))
    handle = shipping.write_plan({"x": np.arange(10)}, tmp_path, min_bytes=0)
    assert not stale.exists() and fresh.exists() and handle is not None


def test_a_full_directory_is_skipped_for_the_next(tmp_path: Path, monkeypatch) -> None:
    """/dev/shm in a container is often 64 MiB: a plan that does not fit goes to the next."""
    small, roomy = tmp_path / "small", tmp_path / "roomy"
    real = shipping.shutil.disk_usage

    def usage(path):
        free = 1 << 20 if Path(path) == small else real(path).free
        return real(path)._replace(free=free)

    monkeypatch.setattr(shipping.shutil, "disk_usage", usage)
    handle = shipping.write_plan({"x": np.arange(10)}, [small, roomy], min_bytes=0)
    assert handle is not None and Path(handle.path).parent == roomy
    assert list(small.iterdir()) == []


def test_only_this_hosts_workers_read_its_files() -> None:
    assert shipping._is_this_host("127.0.0.1")
    assert not shipping._is_this_host("192.0.2.7")  # TEST-NET-1: never a local address


def test_missing_plan_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RECPIPE_SHARED_DIR"):
        shipping.PlanFile(str(tmp_path / "gone.bin"), 64, "t").load()


@pytest.mark.usefixtures("dask_client")
def test_distributed_fit_transform_through_plan_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every plan goes by file here (no size floor): results equal the in-memory path's."""
    monkeypatch.setattr(shipping, "MIN_FILE_BYTES", 0)
    monkeypatch.setenv(shipping.SHARED_DIR_ENV, str(tmp_path))
    rng = np.random.default_rng(3)
    n = 2_000
    pdf = pd.DataFrame({
        "user_id": rng.integers(0, 200, n), "item_id": rng.integers(0, 50, n),
        "x": rng.normal(0, 1, n), "click": rng.integers(0, 2, n).astype(np.int8),
    })

    def workflow() -> Workflow:
        return Workflow(
            (["user_id", "item_id"] >> Categorify(None))
            + (["x"] >> FillMedian(None) >> Normalize(None))
            + TargetEncoding(["user_id", ["user_id", "item_id"]], target="click", kfold=3)
            + ["click"]
        )

    fitted = workflow()
    lazy = fitted.fit_transform(dd.from_pandas(pdf, npartitions=4))
    plans = tmp_path / "recpipe-plans"
    assert any(plans.iterdir())  # the transform plan, waiting for the lazy collection
    got = lazy.compute()
    expected = workflow().fit_transform(pdf)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    # The client's statistics now live in the mapped file too (its own copy was freed) ...
    vocab = fitted.plan.steps[0].op.vocabs_["user_id"]
    assert not vocab.counts.flags.writeable
    # ... except TargetEncoding's: it shipped only its keys of several folds (no row had a
    # null target), and its statistics stay in their key ranges until needed whole ...
    encoder = fitted.plan.steps[-1].op
    assert isinstance(encoder, TargetEncoding)
    assert isinstance(encoder.stats_["TE_user_id_item_id_click"], KeyRanges)
    # ... and serve pandas transforms, saving and refitting as before.
    pd.testing.assert_frame_equal(fitted.transform(pdf), workflow().fit(pdf).transform(pdf))
    fitted.save(tmp_path / "saved")
    loaded = Workflow.load(tmp_path / "saved")
    pd.testing.assert_frame_equal(loaded.transform(pdf), fitted.transform(pdf))
    fitted.fit(pdf.iloc[:500], update=True)
    pd.testing.assert_frame_equal(
        fitted.transform(pdf), workflow().fit(pdf).fit(pdf.iloc[:500], update=True).transform(pdf)
    )


@pytest.mark.usefixtures("dask_client")
def test_distributed_out_of_fold_with_null_targets_ships_whole_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows with a null target may need a key the out-of-fold table leaves out (one seen in
    a single other fold): then the whole statistics travel, and the workers' encodings equal
    the in-memory path's."""
    monkeypatch.setattr(shipping, "MIN_FILE_BYTES", 0)
    monkeypatch.setenv(shipping.SHARED_DIR_ENV, str(tmp_path))
    rng = np.random.default_rng(11)
    n = 3_000
    pdf = pd.DataFrame({
        "user_id": rng.integers(0, 1_500, n),
        "click": np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 2, n)),
    })

    def workflow() -> Workflow:
        return Workflow(TargetEncoding(["user_id"], target="click", kfold=4) + ["click"])

    fitted = workflow()
    got = fitted.fit_transform(dd.from_pandas(pdf, npartitions=4)).compute()
    expected = workflow().fit_transform(pdf)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    stats = fitted.plan.steps[0].op.stats_["TE_user_id_click"]
    assert isinstance(stats, TargetStats) and stats.untargeted == int(pdf["click"].isna().sum())
