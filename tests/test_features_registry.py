"""Ops are declared once, in their own module: the saved-workflow registry, the workflow-file
registry and pipeline.config's validation are all read off the op classes."""

from __future__ import annotations

import sys
from pathlib import Path

import pipeline.features as features
from pipeline.config import _OP_MODELS
from pipeline.features.base import op_types
from pipeline.features.spec_ops import SPEC_OPS, op_from_spec

OPS_DIR = Path(features.__file__).parent / "ops"

SAVED_TYPE_NAMES = {
    "AddTags", "Bucketize", "Categorify", "CategorifyCombo", "Clip", "DifferenceLag",
    "FillMedian", "FillMissing", "Filter", "HashBucket", "HashedCross", "JoinGroupby", "LogOp",
    "Normalize", "NormalizeMinMax", "Rename", "TargetEncoding", "UserFunction",
}


def test_every_op_module_is_imported_with_the_package() -> None:
    modules = {p.stem for p in OPS_DIR.glob("*.py") if p.stem != "__init__"}
    assert modules <= {m.rsplit(".", 1)[-1] for m in sys.modules
                       if m.startswith("pipeline.features.ops.")}


def test_saved_workflows_name_ops_by_their_stable_type_names() -> None:
    assert set(op_types()) >= SAVED_TYPE_NAMES


def test_config_validates_exactly_the_declared_ops() -> None:
    assert list(_OP_MODELS) == list(SPEC_OPS)
    for name, model in _OP_MODELS.items():
        assert model is SPEC_OPS[name].__dict__["Spec"]
        assert model.op_name() == name


def test_every_op_of_ops_is_importable_from_the_package() -> None:
    for cls in op_types().values():
        if cls.__module__.startswith("pipeline.features.ops."):
            assert getattr(features, cls.__name__) is cls


def test_difference_lag_reads_its_user_column_from_columns() -> None:
    spec = _OP_MODELS["difference_lag"](op="difference_lag", columns=["user"], timestamp="t")
    op = op_from_spec(spec)
    assert op.get_params() == {"partition_col": "user", "timestamp": "t", "shift": 1}
