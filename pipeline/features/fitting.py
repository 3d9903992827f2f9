"""Fitting and applying ops partition by partition, on Dask or on one in-memory frame.

Fitting is one pass: every partition yields (row count, one small statistic per stateful op) on
the worker that holds it, and those are merged by a tree of ``dask.delayed`` calls (``split_every``
at a time), so only statistics ever reach the client. Transforming is ``map_partitions`` with the
fitted ops shipped once, as a single graph key, and the same per-frame function the pandas path
calls, which is what makes distributed and in-memory results identical.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
from dask.dataframe.utils import make_meta

from .backend import to_pandas
from .base import Op, PartitionContext

SPLIT_EVERY = 8

Stats = tuple[int, tuple[Any, ...]]


class FitPass:
    """The per-partition and merge functions of one fitting pass over a set of ops."""

    def __init__(self, ops: Sequence[Op], out_of_fold: bool) -> None:
        self.ops = tuple(copy.copy(op) for op in ops)  # a snapshot: later refits don't leak in
        self.out_of_fold = out_of_fold

    def partition(self, frame: Any) -> Stats:
        pdf = to_pandas(frame)
        ctx = PartitionContext(pdf, self.out_of_fold)
        return len(pdf), tuple(op.partition_stats(pdf, ctx) for op in self.ops)

    def merge(self, *parts: Stats) -> Stats:
        rows, stats = parts[0]
        for more_rows, more in parts[1:]:
            rows += more_rows
            stats = tuple(
                op.merge_stats(a, b) for op, a, b in zip(self.ops, stats, more, strict=True)
            )
        return rows, stats


def _call_partition(plan: FitPass, frame: Any) -> Stats:
    return plan.partition(frame)


def _call_merge(plan: FitPass, *parts: Stats) -> Stats:
    return plan.merge(*parts)


def fit_stats(data: Any, ops: Sequence[Op], out_of_fold: bool) -> Stats:
    """(total rows, merged statistics per op) of ``data``, a Dask or in-memory DataFrame."""
    plan = FitPass(ops, out_of_fold)
    if not isinstance(data, dd.DataFrame):
        return plan.partition(data)
    plan_key = dask.delayed(plan, name=f"recpipe-fit-plan-{uuid.uuid4().hex}", traverse=False)
    level = [dask.delayed(_call_partition, pure=True)(plan_key, part) for part in data.to_delayed()]
    while len(level) > 1:
        level = [
            dask.delayed(_call_merge, pure=True)(plan_key, *level[i : i + SPLIT_EVERY])
            for i in range(0, len(level), SPLIT_EVERY)
        ]
    (result,) = dask.compute(level[0])
    return result


class TransformPass:
    """Applies fitted ops to one frame; the same object serves pandas and every Dask partition.

    Ops that add columns read the input frame. Ops that replace columns in place are applied in
    list order, each to what earlier in-place ops left (so ``Normalize`` then ``FillMissing(0.0)``
    on one column fills the normalised values); ``Workflow`` forbids orders where that would feed
    a stateful op values other than those it was fitted on.
    """

    def __init__(self, ops: Sequence[Op], out_of_fold: bool = False) -> None:
        self.ops = tuple(copy.copy(op) for op in ops)
        self.out_of_fold = out_of_fold

    def __call__(self, frame: Any) -> pd.DataFrame:
        raw = to_pandas(frame)
        ctx = PartitionContext(raw, self.out_of_fold)
        out = raw.copy(deep=False)
        for op in self.ops:
            source = out if op.in_place else raw
            for column, values in op.transform(source, ctx).items():
                out[column] = values
        return out


def _call_transform(frame: Any, plan: TransformPass) -> pd.DataFrame:
    return plan(frame)


def transform_data(data: Any, ops: Sequence[Op], out_of_fold: bool = False) -> Any:
    """Transform a Dask DataFrame lazily (``map_partitions``), or an in-memory one now."""
    plan = TransformPass(ops, out_of_fold)
    if not isinstance(data, dd.DataFrame):
        return plan(data)
    meta = plan(make_meta(data))
    plan_key = dask.delayed(plan, name=f"recpipe-transform-plan-{uuid.uuid4().hex}", traverse=False)
    return data.map_partitions(_call_transform, plan_key, meta=meta)


def output_meta(meta: pd.DataFrame, ops: Sequence[Op]) -> pd.DataFrame:
    """The empty output frame for an empty input frame (gives the output dtypes)."""
    return TransformPass(ops)(meta)
