"""Running a compiled plan partition by partition, on Dask or on one in-memory frame.

Fitting goes level by level (see ``plan.py``); each level is one pass in which every partition
is read (only the columns that level needs), run through the already fitted steps upstream of the
level's ops, and reduced to (row count, one small statistic per op) on the worker that holds it.
Those are merged by a tree of ``dask.delayed`` calls (``SPLIT_EVERY`` at a time) until at most
``SPLIT_EVERY`` remain, which the client merges: only statistics reach the client. Statistics
that grow with the data (a user x item target encoding has about a key per row) are merged by
key range instead (``split_out``): each partition cuts them into ``SPLIT_OUT`` ranges, each
range is merged on a worker, and the client joins the ranges.
Transforming is ``map_partitions`` with the same per-frame function the pandas path calls, which
is what makes distributed and in-memory results identical.

Fitted ops can be large (vocabularies, encodings): each pass ships only the steps it runs, as one
graph key that every partition's task depends on (``shipping``: through a memory-mapped file when
the workers can read it).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
from dask.dataframe.utils import make_meta

from pipeline.memory import release_free_memory

from .backend import like, to_pandas
from .base import Op, PartitionContext
from .plan import RAW, Plan, Step
from .shipping import resolve, ship

SPLIT_EVERY = 4
SPLIT_OUT = 8
"""Key ranges a statistic that grows with the data is merged in (``Op.splits_stats``)."""
SPLIT_OUT_FAN_IN = 64
"""Partitions' pieces of one key range merged by one task (more: a tree per range)."""


class _Skipped(Op):
    """Stands in for a step a pass does not run (keeps step indices, ships nothing)."""

    in_place = True
    input_columns = ()
    output_columns = ()

    def get_params(self) -> dict[str, Any]:
        return {}

    @property
    def stateful(self) -> bool:
        return False

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        raise AssertionError("a skipped step never runs")


_SKIPPED = _Skipped()

Stats = tuple[int, tuple[Any, ...]]


class _Store:
    """Column versions of one partition while steps run; frees versions no step needs anymore."""

    def __init__(self, plan: Plan, raw: pd.DataFrame) -> None:
        self.plan, self.raw = plan, raw
        self.values: dict[tuple[str, int], Any] = {}
        self.ctx: PartitionContext | None = None

    def get(self, column: str, version: int) -> Any:
        if version == RAW:
            return self.raw[column].array
        return self.values[(column, version)]

    def source(self, step: Step) -> pd.DataFrame:
        """The frame a step reads: the raw partition if it reads only raw columns."""
        if all(v == RAW for v in step.reads.values()):
            return self.raw
        cols = {c: self.get(c, v) for c, v in step.reads.items()}
        return pd.DataFrame(cols, index=self.raw.index, copy=False)

    def keep_rows(self, mask: Any) -> None:
        """Drop rows (a ``Filter`` step): from the raw partition and every stored version."""
        self.raw = self.raw[mask]
        self.values = {k: v[mask] for k, v in self.values.items()}

    def put(self, index: int, values: dict[str, Any]) -> None:
        for column, value in values.items():
            self.values[(column, index)] = value

    def release(self, index: int, keep: dict[str, int]) -> None:
        """Drop versions whose last reader was step ``index`` (outputs are kept)."""
        for key in [k for k in self.values if self.plan.last_use(*k) == index]:
            if keep.get(key[0]) != key[1]:
                del self.values[key]


class _Runner:
    """Applies a subset of a plan's steps (fitted or stateless) to raw partitions."""

    def __init__(
        self, plan: Plan, indices: Sequence[int], out_of_fold: bool, also: Sequence[int] = ()
    ) -> None:
        # A snapshot of only the steps this pass runs (fitted ops can be large, and are shipped
        # to every worker); copies, so later refits of the same ops don't leak into a lazy graph.
        used = {*indices, *also}
        self.plan = Plan(
            [Step(s.op.for_transform(out_of_fold) if i in indices else copy.copy(s.op),
                  s.reads, s.level) if i in used else Step(_SKIPPED, {}, 0)
             for i, s in enumerate(plan.steps)],
            plan.outputs, plan.keep_raw,
        )
        self.indices = sorted(indices)
        self.out_of_fold = out_of_fold

    def run(self, raw: pd.DataFrame, ctx: PartitionContext, keep: dict[str, int]) -> _Store:
        store = _Store(self.plan, raw)
        for i in self.indices:
            step = self.plan.steps[i]
            source = store.source(step)
            if getattr(step.op, "filters_rows", False):
                store.keep_rows(step.op.mask(source))
                source = store.source(step)
                ctx = PartitionContext(store.raw, ctx.out_of_fold)
            store.put(i, step.op.transform(source, ctx))
            store.release(i, keep)
        store.ctx = ctx
        return store


class FitPass(_Runner):
    """One fitting pass: run the fitted upstream steps, then take the level's statistics."""

    def __init__(self, plan: Plan, level: Sequence[int], out_of_fold: bool) -> None:
        # A step fused with its fills reads the raw columns: its fills are not run before it.
        self.fused = {i for i in plan.fused_fills() if i in set(level)}
        upstream = plan.ancestors([i for i in level if i not in self.fused])
        super().__init__(plan, upstream, out_of_fold, also=level)
        self.level = list(level)

    def _source(self, store: _Store, index: int) -> pd.DataFrame:
        return store.raw if index in self.fused else store.source(self.plan.steps[index])

    def partition(self, frame: Any) -> Stats:
        raw = to_pandas(frame)
        ctx = PartitionContext(raw, self.out_of_fold)
        keep = {c: v for i in self.level for c, v in self.plan.steps[i].reads.items()}
        store = self.run(raw, ctx, keep)
        stats = []
        for i in self.level:
            step = self.plan.steps[i]
            stats.append(step.op.partition_stats(self._source(store, i), store.ctx or ctx))
        return len(raw), tuple(stats)

    def merge(self, *parts: Stats) -> Stats:
        """Sum of row counts and merged statistics per op (``None``: not in this piece)."""
        rows = sum(n for n, _ in parts)
        per_op = zip(*(stats for _, stats in parts), strict=True)
        return rows, tuple(
            op.merge_stats_many(present) if (present := [x for x in s if x is not None]) else None
            for op, s in zip(self._ops(), per_op, strict=True)
        )

    def _ops(self) -> list[Op]:
        return [self.plan.steps[i].op for i in self.level]

    @property
    def splits(self) -> bool:
        """Whether some op of the level merges its statistics by key range."""
        return any(op.splits_stats for op in self._ops())

    def split(self, stats: Stats, buckets: int) -> tuple[Stats, ...]:
        """One partition's statistics as ``buckets + 1`` pieces: the row count and the
        statistics of ops that do not split, then one key range of every splitting op's."""
        rows, per_op = stats
        whole: list[Any] = []
        ranges: list[list[Any]] = [[] for _ in range(buckets)]
        for op, stat in zip(self._ops(), per_op, strict=True):
            pieces = op.split_stats(stat, buckets) if op.splits_stats else [None] * buckets
            whole.append(None if op.splits_stats else stat)
            for piece, into in zip(pieces, ranges, strict=True):
                into.append(piece)
        return (rows, tuple(whole)), *((0, tuple(r)) for r in ranges)

    def join(self, whole: Stats, ranges: list[Stats]) -> Stats:
        """Inverse of ``split`` once each piece is merged over all partitions; consumes
        ``ranges`` (ops let go of each piece as they join it)."""
        rows, per_op = whole
        pieces = {j: [r[1][j] for r in ranges] for j, op in enumerate(self._ops())
                  if op.splits_stats}
        ranges.clear()
        return rows, tuple(
            op.concat_stats(pieces.pop(j)) if op.splits_stats else per_op[j]
            for j, op in enumerate(self._ops())
        )

    def sources(self, raw: pd.DataFrame) -> list[pd.DataFrame]:
        """Each level op's input frame for ``raw`` (used on empty frames, for dtypes)."""
        ctx = PartitionContext(raw, self.out_of_fold)
        keep = {c: v for i in self.level for c, v in self.plan.steps[i].reads.items()}
        store = self.run(raw, ctx, keep)
        return [self._source(store, i) for i in self.level]


def _call_partition(plan: FitPass, frame: Any) -> Stats:
    stats = resolve(plan).partition(frame)
    release_free_memory()  # the partition's temporaries (see pipeline.memory)
    return stats


def _call_partition_split(plan: FitPass, frame: Any, buckets: int) -> tuple[Stats, ...]:
    plan = resolve(plan)
    pieces = plan.split(plan.partition(frame), buckets)
    release_free_memory()
    return pieces


def _call_merge(plan: FitPass, *parts: Stats) -> Stats:
    merged = resolve(plan).merge(*parts)
    release_free_memory()
    return merged


def _merge_tree(plan_key: Any, level: list[Any], fan_in: int, until: int) -> list[Any]:
    """Delayed merges of ``level``, ``fan_in`` at a time, until at most ``until`` remain."""
    while len(level) > until:
        level = [
            dask.delayed(_call_merge, pure=True)(plan_key, *level[i : i + fan_in])
            for i in range(0, len(level), fan_in)
        ]
    return level


def reduce_stats(data: Any, fit_pass: FitPass) -> Stats:
    """(total rows, merged statistics per op of the pass) over ``data`` (Dask or in-memory)."""
    if not isinstance(data, dd.DataFrame):
        return fit_pass.partition(data)
    plan_key = ship(fit_pass, "recpipe-fit-plan")
    parts = data.to_delayed()
    if fit_pass.splits and len(parts) > 1:
        return _reduce_by_key_range(plan_key, parts, fit_pass)
    level = [dask.delayed(_call_partition, pure=True)(plan_key, part) for part in parts]
    level = _merge_tree(plan_key, level, SPLIT_EVERY, SPLIT_EVERY)
    return _merge_on_client(fit_pass, _gather_one_by_one(level))


def _reduce_by_key_range(plan_key: Any, parts: list[Any], fit_pass: FitPass) -> Stats:
    """``split_out``: every partition's large statistics cut into ``SPLIT_OUT`` key ranges;
    each range is merged over all partitions on a worker (one sort of its share), and the
    client only joins the merged ranges. A tree would re-sort and ship a key-per-row
    statistic once per level and merge the last, largest level on the client alone."""
    buckets = min(SPLIT_OUT, len(parts))
    split = [
        dask.delayed(_call_partition_split, pure=True, nout=buckets + 1)(plan_key, part, buckets)
        for part in parts
    ]
    # Merged down to one on a worker, beside the range merges: the client then has nothing to
    # merge between the last range's arrival and the transform.
    whole = _merge_tree(plan_key, [s[0] for s in split], SPLIT_EVERY, 1)
    ranges = [
        _merge_tree(plan_key, [s[b + 1] for s in split], SPLIT_OUT_FAN_IN, 1)[0]
        for b in range(buckets)
    ]
    results = _gather_one_by_one([*whole, *ranges])
    merged = _merge_on_client(fit_pass, results[: len(whole)])
    del results[: len(whole)]
    joined = fit_pass.join(merged, results)
    release_free_memory()  # the ranges' copies, freed as they were joined
    return joined


def _gather_one_by_one(tasks: list[Any]) -> list[Any]:
    """Results of ``tasks`` (in order), computed together but fetched one at a time, each as
    soon as it is done: simultaneous fetches from every worker compete for the host's cores,
    and fetches in order of completion overlap the last merges.

    Fetched straight from the workers (``direct``) unless the Dask configuration says
    otherwise: through the scheduler, results travel pickled with protocol 4, every array
    copied into the pickle; directly, with protocol 5, arrays go out of band, uncopied. A key
    a worker cannot serve directly falls back to the scheduler (Dask's own retry)."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed client: Dask's local scheduler
        return list(dask.compute(*tasks))
    from distributed import as_completed

    direct = dask.config.get("distributed.client.direct-to-workers", None) is not False
    futures = client.compute(tasks)
    position = {future.key: i for i, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for future in as_completed(futures):  # while the last ranges still merge
        results[position[future.key]] = client.gather(future, direct=direct)
        future.release()
    del futures
    client.run(release_free_memory)  # the workers freed these outside any task
    return results


def _merge_on_client(fit_pass: FitPass, partials: list[Stats]) -> Stats:
    """The last merge runs here, on the client, which receives the statistics anyway: no worker
    holds the merged statistics whole beside its inputs."""
    if len(partials) == 1:
        return partials[0]
    merged = fit_pass.merge(*partials)
    # The partial statistics are garbage now: hand their pages back, or the client carries
    # their size in free heap through the whole transform.
    partials.clear()
    release_free_memory()
    return merged


class TransformPass(_Runner):
    """Applies every step of a fitted plan to one frame; serves pandas and Dask partitions.

    List-form plans (``keep_raw``) return the input frame with replaced and added columns;
    graph plans return exactly the graph's output columns.
    """

    def __init__(self, plan: Plan, out_of_fold: bool = False) -> None:
        super().__init__(plan, range(len(plan.steps)), out_of_fold)

    def __call__(self, frame: Any) -> pd.DataFrame:
        raw = to_pandas(frame)
        ctx = PartitionContext(raw, self.out_of_fold)
        outputs = self.plan.outputs
        store = self.run(raw, ctx, outputs)
        raw = store.raw
        if self.plan.keep_raw:
            out = raw.copy(deep=False)
            for column, version in outputs.items():
                if version != RAW:
                    out[column] = store.get(column, version)
            return like(out, frame)
        cols = {c: store.get(c, v) for c, v in outputs.items() if v != RAW or c in raw.columns}
        return like(pd.DataFrame(cols, index=raw.index, copy=False), frame)


def _call_transform(frame: Any, plan: TransformPass) -> pd.DataFrame:
    # Start trimmed too: the fit's statistics were freed on this worker outside any task (when
    # the client released them), and their heap would otherwise ride through the transform.
    release_free_memory()
    out = resolve(plan)(frame)
    # Every feature task ends with its freed temporaries handed back: a worker paused at its
    # memory threshold by untrimmed free heap would otherwise never run the task that frees it.
    release_free_memory()
    return out


def transform_data(data: Any, plan: Plan, out_of_fold: bool = False) -> Any:
    """Transform a Dask DataFrame lazily (``map_partitions``), or an in-memory one now."""
    run = TransformPass(plan, out_of_fold)
    if not isinstance(data, dd.DataFrame):
        return run(data)
    meta = run(make_meta(data))
    if not plan.keep_raw:  # read only the columns some step or the output needs
        wanted = {*plan.raw_columns(range(len(plan.steps))),
                  *(c for c, v in plan.outputs.items() if v == RAW)}
        data = data[[c for c in data.columns if c in wanted]]
    shipped = ship(run, "recpipe-transform-plan",
                   adopt=lambda mapped: _share_fitted_state(plan, mapped.plan))
    del run
    release_free_memory()  # the client's own copy of the statistics, if the file took over
    return data.map_partitions(_call_transform, shipped, meta=meta)


def _share_fitted_state(plan: Plan, mapped: Plan) -> None:
    """Point the client's fitted ops at the plan file's memory-mapped copy of their state.

    The client's own copy of the statistics is then freed, and one copy, in the page cache,
    serves the client and every worker. The arrays become read-only,
    which fitted state is: a refit replaces it.
    """
    for mine, theirs in zip(plan.steps, mapped.steps, strict=True):
        if (theirs.op is not _SKIPPED and type(theirs.op) is type(mine.op)
                and not theirs.op.partial_state):
            mine.op.__dict__.update(theirs.op.__dict__)


def output_meta(meta: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """The empty output frame for an empty input frame (gives the output dtypes)."""
    return TransformPass(plan)(meta)
