"""The new ops on a real Dask cluster: distributed fit and transform equal the pandas ones
(exact values and dtypes), for every partition split."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.features import (
    Bucketize,
    Categorify,
    CategorifyCombo,
    Clip,
    FillMedian,
    HashBucket,
    HashedCross,
    JoinGroupby,
    LogOp,
    NormalizeMinMax,
    TargetEncoding,
    Workflow,
)

pytestmark = pytest.mark.usefixtures("dask_client")


def ops() -> list:
    return [
        Categorify(["s"], max_size=20, num_buckets=3),
        Categorify(["a", "b"], encode_type="joint"),
        CategorifyCombo([["a", "s"]], max_size=100, num_buckets=4),
        FillMedian(["x"]),
        NormalizeMinMax(["z"]),
        LogOp(["w"]),
        Clip(["v"], min_value=-1.0, max_value=1.0),
        Bucketize(["q"], [-1.0, 0.0, 1.0]),
        HashBucket(["u"], 50),
        HashedCross([["u", "s"]], 100),
        JoinGroupby(["u"], cont_cols=["z"], stats=["count", "mean", "std"]),
        TargetEncoding(["u", ["u", "s"]], target=["y", "r"], kfold=3, p_smooth=5.0),
    ]


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "u": rng.integers(0, 200, n),
            "s": pd.Series([f"{v:x}" for v in rng.zipf(1.5, n) % 500], dtype="str"),
            "a": rng.integers(0, 30, n),
            "b": rng.integers(0, 40, n),
            "x": x,
            "z": rng.normal(size=n),
            "w": rng.lognormal(size=n).astype(np.float32),
            "v": rng.normal(size=n),
            "q": rng.normal(size=n),
            "y": rng.integers(0, 2, n).astype(np.int8),
            "r": rng.normal(size=n),
        }
    )


@pytest.mark.parametrize("partitions", [1, 4])
def test_distributed_equals_pandas(partitions: int) -> None:
    data = frame(3000, partitions)
    local = Workflow(ops())
    local_train = local.fit_transform(data)
    ddf = dd.from_pandas(data, npartitions=partitions)
    dist = Workflow(ops())
    dist_train = dist.fit_transform(ddf).compute()
    pd.testing.assert_frame_equal(dist_train.reset_index(drop=True),
                                  local_train.reset_index(drop=True))
    # Inference rows: any subset, pandas, equals the distributed transform's rows.
    full = dist.transform(ddf).compute().reset_index(drop=True)
    subset = data.iloc[::7].drop(columns=["y", "r"])
    got = dist.transform(subset).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, full.iloc[::7].drop(columns=["y", "r"])
                                  .reset_index(drop=True))
