"""The Parquet batch loader: every row once per epoch, seeded shuffles, equal batch counts across
ranks, columns from the feature workflow's schema, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.errors import ConfigError, DataError
from pipeline.features import Categorify, Normalize, Workflow
from pipeline.rankers.loader import LoaderColumns, ParquetBatchLoader, list_partitions

COLS = LoaderColumns(("rid", "other"), ("half",), "label")


def write_rows(folder: Path, sizes: list[int], row_group_size: int, label=None) -> Path:
    """Files of consecutive row ids; every other column is a function of the id."""
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for k, n in enumerate(sizes):
        rid = np.arange(start, start + n, dtype=np.int64)
        lab = (rid % 2).astype(np.int8) if label is None else label(rid)
        pq.write_table(pa.table({"rid": rid, "other": rid * 3, "half": (rid * 0.5).astype(
            np.float64), "label": lab}), folder / f"part-{k}.parquet",
            row_group_size=row_group_size)
        start += n
    return folder


def collect(loader) -> list:
    return list(loader)


def test_every_row_once_per_epoch_with_aligned_columns(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d", [1000, 700, 301], row_group_size=250)
    loader = ParquetBatchLoader(data, COLS, batch_size=128, shuffle=True, shuffle_partitions=2,
                                seed=7, binary_label=True)
    epochs = [collect(loader) for _ in range(2)]
    for batches in epochs:
        assert len(batches) == len(loader) == 16  # ceil(2001 / 128)
        assert [len(b.label) for b in batches] == [128] * 15 + [2001 - 15 * 128]
        cat = torch.cat([b.categorical for b in batches]).numpy()
        cont = torch.cat([b.continuous for b in batches]).numpy()
        label = torch.cat([b.label for b in batches]).numpy()
        assert batches[0].categorical.dtype == torch.int64
        assert batches[0].continuous.dtype == torch.float32
        assert batches[0].label.dtype == torch.float32
        assert batches[0].categorical.is_contiguous() and batches[0].continuous.is_contiguous()
        np.testing.assert_array_equal(np.sort(cat[:, 0]), np.arange(2001))
        np.testing.assert_array_equal(cat[:, 1], cat[:, 0] * 3)
        np.testing.assert_array_equal(cont[:, 0], cat[:, 0] * 0.5)
        np.testing.assert_array_equal(label, cat[:, 0] % 2)
        assert not np.array_equal(cat[:, 0], np.arange(2001))  # shuffled
    first = torch.cat([b.categorical[:, 0] for b in epochs[0]])
    second = torch.cat([b.categorical[:, 0] for b in epochs[1]])
    assert not torch.equal(first, second)  # a new order each epoch
    again = ParquetBatchLoader(data, COLS, batch_size=128, shuffle=True, shuffle_partitions=2,
                               seed=7, prefetch=0)
    assert torch.equal(torch.cat([b.categorical[:, 0] for b in again]), first)  # seeded


def test_unshuffled_keeps_file_order_and_drop_last(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d", [500, 500], row_group_size=100)
    loader = ParquetBatchLoader(data, COLS, batch_size=300, shuffle=False, drop_last=True)
    batches = collect(loader)
    assert len(batches) == len(loader) == 3
    np.testing.assert_array_equal(torch.cat([b.categorical[:, 0] for b in batches]).numpy(),
                                  np.arange(900))


def test_ranks_get_equal_batches_and_disjoint_rows(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d", [1000, 430, 77], row_group_size=200)  # 9 uneven groups
    world = 3
    per_rank = []
    for rank in range(world):
        loader = ParquetBatchLoader(data, COLS, batch_size=64, seed=1, rank=rank,
                                    world_size=world, shuffle_partitions=2)
        per_rank.append(collect(loader))
    shapes = [[len(b.label) for b in batches] for batches in per_rank]
    assert shapes[0] == shapes[1] == shapes[2]  # same count and sizes: no rank waits forever
    rows = np.concatenate([torch.cat([b.categorical[:, 0] for b in bs]).numpy()
                           for bs in per_rank])
    assert len(np.unique(rows)) == len(rows)  # no row on two ranks
    assert len(rows) >= 1507 - 3 * 200  # at most about one row group per rank is left out


def test_columns_from_a_fitted_workflow_schema(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user": rng.integers(0, 30, 400), "item": rng.integers(0, 12, 400),
                          "age": rng.normal(30, 5, 400), "click": rng.integers(0, 2, 400)})
    wf = Workflow([Categorify(["user", "item"]), Normalize(["age"])])
    wf.fit(frame)
    out = wf.transform(frame)
    out.to_parquet(tmp_path / "t.parquet", row_group_size=100)
    cols = LoaderColumns.from_schema(wf.output_schema_, label="click")
    assert cols.categorical == ("user", "item") and cols.continuous == ("age",)
    assert cols.cardinalities == tuple(wf.output_schema_[c]["cardinality"] for c in ("user",
                                                                                    "item"))
    batches = collect(ParquetBatchLoader(tmp_path / "t.parquet", cols, batch_size=64,
                                         shuffle=False))
    cat = torch.cat([b.categorical for b in batches]).numpy()
    np.testing.assert_array_equal(cat[:, 0], out["user"].to_numpy())
    assert cat.max(0).tolist() < list(cols.cardinalities)
    with pytest.raises(ConfigError, match="tagged 'target'"):
        LoaderColumns.from_schema(wf.output_schema_)  # no target tag and no label given


def test_schema_without_categorical_or_target_is_a_config_error() -> None:
    schema = {"age": {"tags": ["continuous"]}, "click": {"tags": ["target"]}}
    with pytest.raises(ConfigError, match="no column tagged 'categorical'"):
        LoaderColumns.from_schema(schema)
    with pytest.raises(ConfigError, match="0 column"):
        LoaderColumns.from_schema({"u": {"tags": ["categorical"], "cardinality": 5}})
    with pytest.raises(ConfigError, match="more than one role"):
        LoaderColumns(("u",), ("u",), "click")


def test_bad_labels_missing_columns_and_too_many_ranks(tmp_path: Path) -> None:
    three = write_rows(tmp_path / "three", [300], 100, label=lambda r: (r % 3).astype(np.int8))
    with pytest.raises(DataError, match=r"label column 'label' holds values in \[0, 2\]"):
        ParquetBatchLoader(three, COLS, binary_label=True)
    halves = write_rows(tmp_path / "halves", [300], 100, label=lambda r: np.full(len(r), 0.5))
    loader = ParquetBatchLoader(halves, COLS, binary_label=True, batch_size=50)
    with pytest.raises(DataError, match="label value 0.5 .* is not 0 or 1"):
        collect(loader)  # within [0, 1] by statistics, caught when read (in the prefetch thread)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['nope'\]"):
        ParquetBatchLoader(three, LoaderColumns(("rid", "nope"), (), "label"))
    with pytest.raises(DataError, match="cannot feed 4 data-parallel ranks"):
        ParquetBatchLoader(three, COLS, world_size=4, rank=0)
    with pytest.raises(DataError, match="does not exist"):
        list_partitions(tmp_path / "missing")


def test_stopping_early_ends_the_prefetch_thread(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d", [2000], row_group_size=100)
    loader = ParquetBatchLoader(data, COLS, batch_size=10, prefetch=2, shuffle_partitions=1)
    it = iter(loader)
    next(it)
    it.close()  # generator finally: stop flag set, thread joined
    import threading
    assert not [t for t in threading.enumerate() if t.name == "recpipe-loader" and t.is_alive()]
