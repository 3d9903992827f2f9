"""A synthetic transformed click log with a known logistic ground truth, for tests and benches.

Categorical columns are already encoded the way Categorify encodes them (0 padding, 1 null, then
values), continuous ones normalised, so the output stands in for the feature stage's output; the
returned schema has the shape of ``Workflow.output_schema_``. The click probability is logistic
in a per-value effect of the first two categoricals, two continuous features and one
categorical x categorical interaction: something a cross network can find and a plain sum cannot.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_click_log(
    directory: str | os.PathLike[str],
    rows: int,
    *,
    files: int = 2,
    row_group_size: int = 65_536,
    cardinalities: tuple[int, ...] = (50, 200, 30, 1_000),
    continuous: int = 3,
    seed: int = 0,
    truth_seed: int = 1234,
) -> dict[str, dict[str, Any]]:
    """Write ``rows`` rows as ``files`` Parquet files; returns the output-schema-like dict.

    ``truth_seed`` fixes the ground-truth coefficients, so a training and a test log written
    with different ``seed`` share them.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    truth = np.random.default_rng(truth_seed)
    effects = [truth.normal(0, 1.0, c) for c in cardinalities[:2]]
    u = truth.normal(0, 1.2, cardinalities[0])
    v = truth.normal(0, 1.2, cardinalities[2 % len(cardinalities)])
    rng = np.random.default_rng(seed)
    cat_names = [f"cat_{i}" for i in range(len(cardinalities))]
    cont_names = [f"num_{i}" for i in range(continuous)]
    bounds = np.linspace(0, rows, files + 1).astype(int)
    for k in range(files):
        n = int(bounds[k + 1] - bounds[k])
        idx = [rng.integers(0, c - 2, n) for c in cardinalities]  # raw values 0..c-3
        dense = rng.standard_normal((continuous, n)).astype(np.float32)
        logit = -1.0 + effects[0][idx[0]] + effects[1][idx[1]]
        logit = logit + u[idx[0]] * v[idx[2 % len(idx)]]
        if continuous:
            logit = logit + 0.8 * dense[0]
        if continuous > 1:
            logit = logit - 0.5 * dense[1]
        prob = 1 / (1 + np.exp(-logit))
        label = (rng.random(n) < prob).astype(np.int8)
        cols: dict[str, Any] = {name: (i + 2).astype(np.int64) for name, i in zip(cat_names, idx,
                                                                                strict=True)}
        cols.update({name: dense[j] for j, name in enumerate(cont_names)})
        cols["click"] = label
        cols["true_prob"] = prob.astype(np.float32)  # not in the schema: the loader ignores it
        pq.write_table(pa.table(cols), out / f"part-{k:03d}.parquet",
                       row_group_size=row_group_size)
    schema: dict[str, dict[str, Any]] = {
        name: {"dtype": "int64", "tags": ["categorical"], "cardinality": int(c)}
        for name, c in zip(cat_names, cardinalities, strict=True)
    }
    schema.update({name: {"dtype": "float32", "tags": ["continuous"], "cardinality": None}
                   for name in cont_names})
    schema["click"] = {"dtype": "int8", "tags": ["target"], "cardinality": None}
    return schema
