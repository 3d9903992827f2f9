"""Transformed Parquet -> torch tensor batches, with no per-row Python.

A *partition* is one Parquet row group. Partitions are dealt to data-parallel ranks once
(largest first, each to the rank with the fewest rows), and every rank then yields the same
number of batches: uneven counts would leave one rank waiting forever in an all-reduce. Each
epoch a rank shuffles its partition order and reads ``shuffle_partitions`` row groups at a time
(Arrow -> numpy, copied column by column into row-major arrays, in cache-sized row blocks); a
batch is one ``np.take`` of rows at the next positions of a seeded permutation of that chunk
(or a zero-copy slice when not shuffling), wrapped by ``torch.from_numpy``. Two background
threads, one decoding Parquet and one assembling batches, keep ``prefetch`` batches ready while
the model trains on the current one.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.errors import ConfigError, DataError

from .loader_columns import LoaderColumns

_FILL_BLOCK = 8192  # rows copied per column at a time: (8192 x 16 columns) fits in L2

__all__ = ["Batch", "LoaderColumns", "ParquetBatchLoader", "Partition", "list_partitions"]


class Batch(NamedTuple):
    """One batch: ``categorical`` (n, c) int64, ``continuous`` (n, d) and ``label`` (n,) float32."""

    categorical: torch.Tensor
    continuous: torch.Tensor
    label: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch on ``device``."""
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))

    def pin_memory(self) -> Batch:
        """Page-locked copies, so host-to-GPU copies can overlap compute."""
        return Batch(*(t.pin_memory() for t in self))


@dataclass(frozen=True)
class Partition:
    """One Parquet row group: the unit of shuffling and of the split across ranks."""

    path: str
    row_group: int
    num_rows: int


PathLike = str | os.PathLike[str]


def list_partitions(paths: PathLike | Sequence[PathLike]) -> list[Partition]:
    """Every row group of the Parquet files under ``paths`` (files or folders), in path order."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.parquet") if f.is_file())
            if not found:
                raise DataError(f"no .parquet files under {p}; point the loader at the "
                                "transformed training data")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p} does not exist; point the loader at the transformed Parquet data")
    parts = []
    for f in files:
        meta = pq.ParquetFile(f).metadata
        parts.extend(Partition(str(f), i, meta.row_group(i).num_rows)
                     for i in range(meta.num_row_groups) if meta.row_group(i).num_rows > 0)
    return parts


def assign_partitions(parts: Sequence[Partition], world_size: int) -> list[list[Partition]]:
    """Deal partitions to ranks, largest first to the rank with fewest rows (deterministic)."""
    if world_size > len(parts):
        raise DataError(
            f"{len(parts)} Parquet row group(s) cannot feed {world_size} data-parallel ranks; "
            "write the training data in at least as many row groups (or files) as ranks"
        )
    order = sorted(range(len(parts)), key=lambda i: (-parts[i].num_rows, i))
    shares: list[list[Partition]] = [[] for _ in range(world_size)]
    rows = np.zeros(world_size, dtype=np.int64)
    for i in order:
        r = int(np.argmin(rows))
        shares[r].append(parts[i])
        rows[r] += parts[i].num_rows
    return shares


class ParquetBatchLoader:
    """Iterate transformed Parquet as :class:`Batch` es of tensors.

    Parameters
    ----------
    paths: Parquet files or folders (every rank must see the same list).
    columns: which columns are categorical, continuous and the label.
    batch_size: rows per batch.
    shuffle: shuffle partition order and rows within each chunk, seeded by ``seed`` and epoch.
    shuffle_partitions: row groups read (and shuffled) together; more mixes better, costs memory.
    rank, world_size: this rank's share of the partitions for data-parallel training.
    drop_last: drop the last, short batch.
    prefetch: batches prepared ahead in a background thread (0 reads in the caller's thread).
    binary_label: check that labels are 0 or 1 (row-group statistics up front, then every chunk).
    pin_memory: page-lock batches (for CUDA training).
    threads: threads that copy a chunk's row groups into its arrays in parallel.
    """

    def __init__(
        self,
        paths: PathLike | Sequence[PathLike],
        columns: LoaderColumns,
        *,
        batch_size: int = 65_536,
        shuffle: bool = True,
        shuffle_partitions: int = 2,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        prefetch: int = 4,
        binary_label: bool = False,
        pin_memory: bool = False,
        threads: int = 2,
    ) -> None:
        if batch_size < 1 or shuffle_partitions < 1 or prefetch < 0:
            raise ConfigError("loader: batch_size and shuffle_partitions must be >= 1, "
                              f"prefetch >= 0 (got {batch_size}, {shuffle_partitions}, {prefetch})")
        if not 0 <= rank < world_size:
            raise ConfigError(f"loader: rank {rank} is outside 0..{world_size - 1}")
        self.columns = columns
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shuffle_partitions = shuffle_partitions
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.binary_label = binary_label
        self.pin_memory = pin_memory
        self.threads = threads
        self.epoch = 0
        parts = list_partitions(paths)
        if not parts:
            raise DataError(f"no rows in the Parquet data at {paths!r}")
        for path in dict.fromkeys(p.path for p in parts):
            _check_file_schema(path, columns)
        if binary_label:
            _check_label_statistics(parts, columns.label)
        shares = assign_partitions(parts, world_size)
        self.partitions: list[Partition] = shares[rank]
        self.rows_per_rank = min(sum(p.num_rows for p in s) for s in shares)
        full, rest = divmod(self.rows_per_rank, batch_size)
        self.num_batches = full + (1 if rest and not drop_last else 0)

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle the next iteration uses (like DistributedSampler)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        parts = list(self.partitions)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch, self.rank])
            parts = [parts[i] for i in rng.permutation(len(parts))]
        chunks = self._chunks(parts)
        if self.prefetch == 0:
            return self._batches(chunks, epoch)
        # two stages on two threads: Arrow decodes the next chunk while numpy gathers this one
        return _background(self._batches(_background(chunks, 1), epoch), self.prefetch)

    # -- reading --------------------------------------------------------------------------

    def _chunks(self, parts: Sequence[Partition]) -> Iterator[list[tuple[Partition, pa.Table]]]:
        """Decoded tables, ``shuffle_partitions`` row groups at a time, until this rank's quota."""
        cols = self.columns
        names = [*cols.categorical, *cols.continuous, cols.label]
        files: dict[str, pq.ParquetFile] = {}
        rows = 0
        for start in range(0, len(parts), self.shuffle_partitions):
            if rows >= self.rows_per_rank:
                return
            chunk = []
            for part in parts[start:start + self.shuffle_partitions]:
                f = files.get(part.path)
                if f is None:
                    f = files[part.path] = pq.ParquetFile(part.path, memory_map=True)
                chunk.append((part, f.read_row_group(part.row_group, columns=names)))
                rows += part.num_rows
            yield chunk

    def _batches(
        self, chunks: Iterator[list[tuple[Partition, pa.Table]]], epoch: int
    ) -> Iterator[Batch]:
        """Batches of each chunk (gathered in a seeded random order when shuffling), exactly
        ``num_batches`` of them."""
        seed = int(np.random.SeedSequence([self.seed, epoch, self.rank]).generate_state(1)[0])
        gen = torch.Generator().manual_seed(seed)
        pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        try:
            yield from self._slice(chunks, gen, pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=False)
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # explicit: an exception's traceback would keep the reader alive

    def _slice(
        self,
        chunks: Iterator[list[tuple[Partition, pa.Table]]],
        gen: torch.Generator,
        pool: ThreadPoolExecutor | None,
    ) -> Iterator[Batch]:
        left = self.rows_per_rank  # rows this rank may still yield (the same on every rank)
        emitted = 0
        carry: _Rows | None = None
        bs = self.batch_size
        spare: _Rows | None = None
        for chunk in chunks:
            data = self._assemble(chunk, carry, pool, spare)
            n = data.num_rows
            order = torch.randperm(n, generator=gen).numpy() if self.shuffle else None
            usable = min(n, left)
            stop = usable if n >= left else (usable // bs) * bs
            for i in range(0, stop, bs):
                if emitted == self.num_batches:
                    return
                emitted += 1
                j = min(i + bs, stop)
                rows = slice(i, j) if order is None else order[i:j]
                yield self._batch(data.take(rows))
            left -= stop
            if stop >= n:
                carry = None
            else:  # rows not yet yielded go round again with the next chunk
                carry = data.take(slice(stop, n) if order is None else order[stop:], copy=True)
            # shuffled batches are gathered copies, so this chunk's memory can hold the next one
            # (saves the page faults of a fresh allocation); unshuffled batches are views of it
            spare = data if order is not None else None

    def _batch(self, rows: _Rows) -> Batch:
        batch = Batch(torch.from_numpy(rows.cat), torch.from_numpy(rows.cont),
                      torch.from_numpy(rows.label))
        return batch.pin_memory() if self.pin_memory else batch

    def _assemble(
        self,
        chunk: Sequence[tuple[Partition, pa.Table]],
        carry: _Rows | None,
        pool: ThreadPoolExecutor | None,
        spare: _Rows | None = None,
    ) -> _Rows:
        """Row-major arrays of the carried rows followed by the chunk's rows.

        Row-major because a batch is then one ``np.take(axis=0)`` of whole rows per array (a
        few cache lines per row) rather than a gather per column.
        """
        cols = self.columns
        n0 = 0 if carry is None else carry.num_rows
        n = n0 + sum(t.num_rows for _, t in chunk)
        if spare is not None and spare.num_rows >= n:
            out = _Rows(spare.cat[:n], spare.cont[:n], spare.label[:n])
        else:
            out = _Rows(np.empty((n, len(cols.categorical)), dtype=np.int64),
                        np.empty((n, len(cols.continuous)), dtype=np.float32),
                        np.empty(n, dtype=np.float32))
        if carry is not None:
            out.cat[:n0], out.cont[:n0], out.label[:n0] = carry.cat, carry.cont, carry.label
        starts = np.cumsum([n0] + [t.num_rows for _, t in chunk])

        def fill(k: int) -> None:
            part, table = chunk[k]
            cat = [_column(table, name, part) for name in cols.categorical]
            cont = [_column(table, name, part) for name in cols.continuous]
            base = int(starts[k])
            out.label[base:base + table.num_rows] = _column(table, cols.label, part)
            # in blocks of rows that stay in cache while each column is written into them
            for r0 in range(0, table.num_rows, _FILL_BLOCK):
                r1 = min(r0 + _FILL_BLOCK, table.num_rows)
                for j, values in enumerate(cat):
                    out.cat[base + r0:base + r1, j] = values[r0:r1]
                for j, values in enumerate(cont):
                    out.cont[base + r0:base + r1, j] = values[r0:r1]

        # numpy releases the GIL while copying, so row groups fill in parallel
        if pool is not None and len(chunk) > 1:
            list(pool.map(fill, range(len(chunk))))
        else:
            for k in range(len(chunk)):
                fill(k)
        if self.binary_label:
            _check_binary(out.label[n0:], [p for p, _ in chunk])
        return out


@dataclass
class _Rows:
    """Row-major rows: cat (n, c) int64, cont (n, d) float32, label (n,) float32."""

    cat: np.ndarray
    cont: np.ndarray
    label: np.ndarray

    @property
    def num_rows(self) -> int:
        return len(self.label)

    def take(self, rows: slice | np.ndarray, copy: bool = False) -> _Rows:
        """The given rows: a view for a slice (unless ``copy``), a gather for positions."""
        if isinstance(rows, slice):
            picked = _Rows(self.cat[rows], self.cont[rows], self.label[rows])
            return _Rows(picked.cat.copy(), picked.cont.copy(), picked.label.copy()) if copy \
                else picked
        return _Rows(np.take(self.cat, rows, axis=0), np.take(self.cont, rows, axis=0),
                     np.take(self.label, rows))


def _column(table: pa.Table, name: str, part: Partition) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        raise DataError(
            f"column {name!r} has {col.null_count} null value(s) in {part.path} "
            f"(row group {part.row_group}); fill them in the feature workflow (fill_missing, "
            "or categorify for categorical columns) before training"
        )
    return col.to_numpy()


def _check_file_schema(path: str, cols: LoaderColumns) -> None:
    """Every requested column exists with a usable type (checked once, on the first file)."""
    schema = pq.read_schema(path)
    want = {**dict.fromkeys(cols.categorical, "categorical"),
            **dict.fromkeys(cols.continuous, "continuous"), cols.label: "label"}
    missing = [c for c in want if c not in schema.names]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing!r} the loader needs; columns present: "
                        f"{schema.names!r}")
    for name, role in want.items():
        t = schema.field(name).type
        ok = pa.types.is_integer(t) if role == "categorical" else (
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))
        if not ok:
            hint = ("categorify it in the feature workflow" if role == "categorical"
                    else "make it numeric")
            raise DataError(f"column {name!r} in {path} is {t}, which cannot be a {role} "
                            f"feature; {hint}")


def _check_label_statistics(parts: Sequence[Partition], label: str) -> None:
    """Fail before training (on every rank alike) when row-group min/max show non-binary labels."""
    metas: dict[str, Any] = {}
    for part in parts:
        meta = metas.get(part.path)
        if meta is None:
            meta = metas[part.path] = pq.ParquetFile(part.path).metadata
        rg = meta.row_group(part.row_group)
        for k in range(rg.num_columns):
            col = rg.column(k)
            if col.path_in_schema != label:
                continue
            stats = col.statistics
            if stats is not None and stats.has_min_max and (stats.min < 0 or stats.max > 1):
                raise DataError(
                    f"label column {label!r} holds values in [{stats.min}, {stats.max}] in "
                    f"{part.path} (row group {part.row_group}); a binary objective needs 0/1 "
                    "labels: threshold the label, or choose a ranking/regression objective"
                )


def _check_binary(label: np.ndarray, chunk: Sequence[Partition]) -> None:
    bad = (label != 0) & (label != 1)
    if bad.any():
        value = label[np.argmax(bad)].item()
        raise DataError(
            f"label value {value!r} in {', '.join(sorted({p.path for p in chunk}))} is not 0 or 1, "
            "which a binary objective needs: threshold the label, or choose another objective"
        )


def _background(batches: Iterator[Batch], depth: int) -> Iterator[Batch]:
    """Run ``batches`` in a daemon thread, ``depth`` ahead; errors re-raise in the consumer."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        """Hand ``item`` over unless the consumer has gone; False once it has."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for b in batches:
                if not put(b):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops an inner prefetch stage too

    thread = threading.Thread(target=produce, name="recpipe-loader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)

