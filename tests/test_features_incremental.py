"""Incremental refit: ``fit(new, update=True)`` merges new statistics into the fitted (or saved)
ones, so a nightly run reads only the new rows and lands where a full refit would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError, DataError
from pipeline.features import (
    FillMedian,
    Normalize,
    NotFittedError,
    Op,
    TargetEncoding,
    Workflow,
)
from pipeline.features.base import InPlaceOp, PartitionContext, column_list


def day(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10 + seed, 3, n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 25, n),
            "item_id": rng.integers(0, 10, n) + 5 * seed,  # new items appear each day
            "x": x,
            "click": rng.integers(0, 2, n),
        }
    )


def workflow() -> Workflow:
    return Workflow(
        (["x"] >> FillMedian(None) >> Normalize(None))
        + TargetEncoding(["user_id", "item_id", ["user_id", "item_id"]], target="click",
                         p_smooth=10.0)
        + ["click"]
    )


def test_update_equals_a_full_refit_on_all_rows() -> None:
    old, new = day(1), day(2)
    both = pd.concat([old, new], ignore_index=True)
    updated = workflow().fit(old).fit(new, update=True)
    full = workflow().fit(both)
    probe = day(3, 200)
    a, b = updated.transform(probe), full.transform(probe)
    for col in ("TE_user_id_click", "TE_item_id_click", "TE_user_id_item_id_click"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-6)
    # The median is merged exactly; Normalize's moments are then fitted on the new rows filled
    # with the merged median and merged into the old moments.
    assert updated.plan.steps[0].op.medians_ == full.plan.steps[0].op.medians_
    assert a["TE_item_id_click"].nunique() > 1  # the new day's items are encoded, not the prior


def test_update_of_a_saved_workflow_on_dask(tmp_path: Path) -> None:
    old, new = day(1), day(2)
    workflow().fit(dd.from_pandas(old, npartitions=3)).save(tmp_path / "night1")
    loaded = Workflow.load(tmp_path / "night1")
    loaded.fit(dd.from_pandas(new, npartitions=2), update=True)
    loaded.save(tmp_path / "night2")
    full = workflow().fit(pd.concat([old, new], ignore_index=True))
    probe = day(4, 100)
    a = Workflow.load(tmp_path / "night2").transform(probe)
    b = full.transform(probe)
    for col in ("TE_user_id_click", "TE_item_id_click", "TE_user_id_item_id_click"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-6)


class _KeepsNoStats(InPlaceOp):
    """A real stateful op that does not keep its merged statistics (so it cannot update)."""

    type_name = "_TestKeepsNoStats"

    def __init__(self, columns: Any = None) -> None:
        self.columns = column_list(columns, "_KeepsNoStats")
        self.total_: float | None = None

    def get_params(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}

    def partition_stats(self, frame: pd.DataFrame, ctx: PartitionContext) -> float:
        return float(frame[self.columns[0]].sum())

    def merge_stats(self, a: float, b: float) -> float:
        return a + b

    def finish_fit(self, stats: float) -> None:
        self.total_ = stats

    def transform(self, frame: pd.DataFrame, ctx: PartitionContext) -> dict[str, Any]:
        return {c: frame[c].to_numpy() / (self.total_ or 1.0) for c in self.columns}


def test_update_errors() -> None:
    with pytest.raises(NotFittedError, match="update=True"):
        workflow().fit(day(1), update=True)
    wf = workflow().fit(day(1))
    with pytest.raises(DataError, match=r"lacks column\(s\) \['click'\]"):
        wf.fit(day(2).drop(columns=["click"]), update=True)
    op: Op = _KeepsNoStats(["x"])
    plain = Workflow(["x"] >> op).fit(day(1))
    with pytest.raises(ConfigError, match="keeps no merged statistics"):
        plain.fit(day(2), update=True)
