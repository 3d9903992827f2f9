"""Fitted plans reach the workers through a memory-mapped file when the workers can read it:
the same results as through the graph, read-only views of the file, stale files swept, and
only a file the client wrote, in a folder only its user can write to, is ever unpickled."""

from __future__ import annotations

import gc
import os
import pickle
import struct
import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.features import Categorify, FillMedian, Normalize, TargetEncoding, Workflow, shipping
from pipeline.features.fitting import TransformPass
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
        shipping.PlanFile(str(tmp_path / "gone.bin"), 64, "t", b"k" * 32, b"d" * 32).load()


class _RunsCode:
    """Unpickling it creates ``marker``: what a tampered plan stream could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return open, (str(self.marker), "w")


def _written(tmp_path: Path) -> tuple[shipping.PlanFile, shipping.PlanFile, dict]:
    """A plan file, its handle and the copy a worker receives, and what was written."""
    obj = {"ids": np.arange(100_000), "name": "plan"}
    handle = shipping.write_plan(obj, tmp_path / "plans", min_bytes=0)
    assert handle is not None
    return handle, pickle.loads(pickle.dumps(handle)), obj


def test_a_plan_folder_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    """Its owner could point the link elsewhere between the check and the workers' reads."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "recpipe-plans-link"
    link.symlink_to(real, target_is_directory=True)
    assert shipping.write_plan({"x": np.arange(10)}, link, min_bytes=0) is None
    assert list(real.iterdir()) == []
    handle = shipping.write_plan({"x": np.arange(10)}, [link, tmp_path / "next"], min_bytes=0)
    assert handle is not None and Path(handle.path).parent == tmp_path / "next"


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_plan_folder_another_user_owns_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 4242, -1)
    assert shipping.write_plan({"x": np.arange(10)}, theirs, min_bytes=0) is None
    assert list(theirs.iterdir()) == []


def test_a_plan_file_changed_after_writing_is_refused(tmp_path: Path) -> None:
    handle, copy, _ = _written(tmp_path)
    path = Path(handle.path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of a buffer: the old loader mapped it silently
    path.write_bytes(bytes(data))
    with pytest.raises(shipping.PlanFileError, match="not the file the client wrote"):
        copy.load()


def test_a_replaced_plan_stream_is_never_unpickled(tmp_path: Path) -> None:
    handle, copy, _ = _written(tmp_path)
    marker = tmp_path / "code-ran"
    stream = pickle.dumps(_RunsCode(marker), protocol=5)
    forged = struct.pack("<8sQQ", b"RECPLAN1", len(stream), 0) + stream
    Path(handle.path).write_bytes(forged.ljust(handle.size, b"\0"))  # a well-formed plan file
    with pytest.raises(shipping.PlanFileError, match="HMAC"):
        copy.load()
    assert not marker.exists()


def test_a_plan_file_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    handle, copy, _ = _written(tmp_path)
    path = Path(handle.path)
    twin = tmp_path / "twin.bin"
    twin.write_bytes(path.read_bytes())  # the same bytes: only the link gives it away
    path.unlink()
    path.symlink_to(twin)
    with pytest.raises(shipping.PlanFileError, match="plain file"):
        copy.load()


def test_the_key_travels_in_the_handle_never_beside_the_file(tmp_path: Path) -> None:
    handle, copy, obj = _written(tmp_path)
    assert copy.key == handle.key and len(handle.key) == 32
    files = list((tmp_path / "plans").iterdir())
    assert files == [Path(handle.path)] and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert handle.key not in files[0].read_bytes()
    assert handle.key.hex() not in repr(handle)
    np.testing.assert_array_equal(copy.load()["ids"], obj["ids"])  # and it loads


def test_a_plan_loaded_from_its_file_transforms_identically(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    pdf = pd.DataFrame({"user_id": rng.integers(0, 50, 500), "x": rng.normal(0, 1, 500),
                        "click": rng.integers(0, 2, 500)})
    wf = Workflow((["user_id"] >> Categorify(None)) + (["x"] >> Normalize(None))
                  + TargetEncoding(["user_id"], target="click") + ["click"]).fit(pdf)
    handle = shipping.write_plan(TransformPass(wf.plan), tmp_path, min_bytes=0)
    assert handle is not None
    loaded = pickle.loads(pickle.dumps(handle)).load()
    pd.testing.assert_frame_equal(loaded(pdf), wf.transform(pdf))


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
