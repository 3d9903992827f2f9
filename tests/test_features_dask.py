"""On a real distributed cluster: fitting as a tree reduction, and train/serve parity."""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import DataError
from pipeline.features import Categorify, FillMissing, Normalize, TargetEncoding, Workflow

pytestmark = pytest.mark.usefixtures("dask_client")

OP_COLUMNS = ["user_id", "item_id", "occupation", "age", "TE_item_id_relevant"]


def make_workflow(num_buckets: int = 1, freq_threshold: int = 0) -> Workflow:
    return Workflow(
        [
            Categorify(
                ["user_id", "item_id", "occupation"],
                num_buckets=num_buckets,
                freq_threshold=freq_threshold,
            ),
            Normalize(["age"]),
            FillMissing(["age"], value=0.0),
            TargetEncoding(["item_id", ["user_id", "occupation"]], target="relevant", kfold=3),
        ]
    )


def random_frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n)
    age[rng.random(n) < 0.2] = np.nan
    items = rng.choice(["a", "b", "c", "d", "e", "f"], n).astype(object)
    items[rng.random(n) < 0.1] = None
    age[0], items[0] = 40.0, "a"  # fitting needs at least one value per column
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 8, n).astype(np.int64),
            "item_id": pd.Series(items, dtype="str"),
            "occupation": rng.choice([3, 5, 11], n),
            "age": age,
            "relevant": rng.integers(0, 2, n),
        }
    )


def test_distributed_fit_equals_in_memory_fit() -> None:
    pdf = random_frame(0, 500)
    ddf = dd.from_pandas(pdf, npartitions=7)
    a, b = make_workflow().fit(pdf), make_workflow().fit(ddf)
    for col in ("user_id", "item_id", "occupation"):
        pd.testing.assert_frame_equal(
            a.categorify_mapping(col), b.categorify_mapping(col), check_dtype=False
        )
    out_a, out_b = a.transform(pdf), b.transform(pdf)
    for col in ("user_id", "item_id", "occupation", "TE_item_id_relevant"):
        pd.testing.assert_series_equal(out_a[col], out_b[col])
    np.testing.assert_allclose(out_a["age"], out_b["age"], rtol=1e-6)
    assert a.output_schema["item_id"] == b.output_schema["item_id"]


def test_transform_is_lazy_and_keeps_partitions() -> None:
    pdf = random_frame(1, 100)
    ddf = dd.from_pandas(pdf, npartitions=4)
    out = make_workflow().fit(ddf).transform(ddf)
    assert isinstance(out, dd.DataFrame)
    assert out.npartitions == 4
    assert list(out.columns) == [
        *pdf.columns,
        "TE_item_id_relevant",
        "TE_user_id_occupation_relevant",
    ]


frames = st.builds(random_frame, seed=st.integers(0, 2**16), n=st.integers(1, 60))


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    pdf=frames,
    npartitions=st.integers(1, 4),
    num_buckets=st.integers(1, 3),
    freq_threshold=st.integers(0, 2),
    data=st.data(),
)
def test_parity_pandas_subset_equals_distributed_rows(
    pdf: pd.DataFrame, npartitions: int, num_buckets: int, freq_threshold: int, data: st.DataObject
) -> None:
    ddf = dd.from_pandas(pdf, npartitions=npartitions)
    wf = make_workflow(num_buckets, freq_threshold).fit(ddf)
    distributed = wf.transform(ddf).compute()
    rows = data.draw(st.lists(st.integers(0, len(pdf) - 1), max_size=len(pdf)), label="rows")
    # Same input as the cluster saw (Dask may store strings as string[pyarrow]): exact equality.
    seen = ddf.compute()
    pd.testing.assert_frame_equal(wf.transform(seen.iloc[rows]), distributed.iloc[rows])
    # A serving frame built by pandas (``str`` dtype): the features are identical too.
    served = wf.transform(pdf.iloc[rows])
    pd.testing.assert_frame_equal(served[OP_COLUMNS], distributed.iloc[rows][OP_COLUMNS])


def test_fit_transform_out_of_fold_values_match_pandas() -> None:
    pdf = random_frame(2, 400)
    ddf = dd.from_pandas(pdf, npartitions=5)
    a = make_workflow().fit_transform(pdf)
    b = make_workflow().fit_transform(ddf).compute()
    for col in ("TE_item_id_relevant", "TE_user_id_occupation_relevant", "user_id", "item_id"):
        pd.testing.assert_series_equal(a[col], b[col])
    # Same result whatever the partitioning.
    c = make_workflow().fit_transform(dd.from_pandas(pdf, npartitions=2)).compute()
    pd.testing.assert_series_equal(b["TE_item_id_relevant"], c["TE_item_id_relevant"])


def test_errors_on_dask_input(tmp_path: Path) -> None:
    pdf = random_frame(3, 50)
    with pytest.raises(DataError, match=r"'occupation'.*Columns present"):
        make_workflow().fit(dd.from_pandas(pdf.drop(columns=["occupation"]), npartitions=2))
    with pytest.raises(DataError, match="empty dataset"):
        make_workflow().fit(dd.from_pandas(pdf.iloc[:0], npartitions=1))
    wf = make_workflow().fit(dd.from_pandas(pdf, npartitions=2))
    wf.save(tmp_path)
    loaded = Workflow.load(tmp_path)
    with pytest.raises(DataError, match="'age'"):
        loaded.transform(dd.from_pandas(pdf.drop(columns=["age"]), npartitions=2))
    ddf = dd.from_pandas(pdf, npartitions=3)
    pd.testing.assert_frame_equal(loaded.transform(ddf).compute(), wf.transform(ddf).compute())
