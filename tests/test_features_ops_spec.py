"""Every op can be written in a workflow file: YAML entry -> validated model -> op."""

from __future__ import annotations

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from pipeline.config import FeatureOp
from pipeline.features.spec_ops import SPEC_OPS, op_from_spec

ENTRIES = """
- {op: categorify, columns: [a, b], freq_threshold: {a: 2}, max_size: 100, num_buckets: 4}
- {op: categorify, columns: [a, b], encode_type: joint}
- {op: categorify_combo, columns: [[a, b]], max_size: 10}
- {op: normalize, columns: [x]}
- {op: fill_missing, columns: [x], value: 0}
- {op: fill_median, columns: [x]}
- {op: target_encoding, columns: [a, [a, b]], target: [y, z], kfold: 3}
- {op: normalize_minmax, columns: [x]}
- {op: log, columns: [x]}
- {op: clip, columns: [x], min_value: 0}
- {op: bucketize, columns: [x], boundaries: [0, 1.5, 10]}
- {op: hash_bucket, columns: [a], num_buckets: 1000}
- {op: hashed_cross, columns: [[a, b]], num_buckets: 1000}
- {op: join_groupby, columns: [a], cont_cols: [x], stats: [count, mean]}
- {op: difference_lag, columns: [a], timestamp: t}
- {op: user_function, columns: [x], function: "math:fabs", outputs: [x_abs]}
"""


def test_every_op_builds_from_yaml_and_round_trips_its_params() -> None:
    adapter = TypeAdapter(FeatureOp)
    built = [op_from_spec(adapter.validate_python(e)) for e in yaml.safe_load(ENTRIES)]
    assert {type(op) for op in built} == set(SPEC_OPS.values())
    for op in built:
        assert type(op)(**op.get_params()).get_params() == op.get_params()


@pytest.mark.parametrize(
    "entry",
    [
        {"op": "hash_bucket", "columns": ["a"]},
        {"op": "join_groupby", "columns": ["a"], "stats": ["median"]},
        {"op": "bucketize", "columns": ["x"]},
        {"op": "lag", "columns": ["a"]},
    ],
)
def test_bad_entries_are_rejected(entry: dict) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(FeatureOp).validate_python(entry)
