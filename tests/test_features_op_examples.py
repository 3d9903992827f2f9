"""Every op's docstring example runs and shows what the op outputs (as NVTabular's do)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

import pipeline.features.ops as ops
from pipeline.features import Workflow
from pipeline.features.base import Op


def op_modules() -> list[ModuleType]:
    modules = [importlib.import_module(f"{ops.__name__}.{m.name}")
               for m in pkgutil.iter_modules(ops.__path__) if not m.ispkg]
    return [m for m in modules if any(isinstance(v, type) and issubclass(v, Op)
                                      and "type_name" in v.__dict__ and v.__module__ == m.__name__
                                      for v in vars(m).values())]


@pytest.mark.parametrize("module", op_modules(), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_op_docstring_examples(module: ModuleType) -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    report: list[str] = []
    ops_with_examples = set()
    for test in finder.find(module, globs={**vars(module), "pd": pd, "np": np,
                                           "Workflow": Workflow}):
        if test.examples:
            ops_with_examples.add(test.name.rsplit(".", 1)[-1])
            runner.run(test, out=report.append)
    declared = {name for name, v in vars(module).items() if isinstance(v, type)
                and issubclass(v, Op) and "type_name" in v.__dict__
                and v.__module__ == module.__name__}
    assert declared <= ops_with_examples, f"ops without a docstring example: {declared}"
    assert runner.failures == 0, "".join(report)
