"""The package's imports flow one way, in the pipeline's order, with no cycles.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a cycle held
together by a late import is still a cycle for the reader. ``LAYERS`` is the order of the night;
a module may import from its own layer or an earlier one, never from a later one.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"

# The night's order: infrastructure, then features -> candidates -> training rows -> rankers ->
# recommend -> evaluate -> publish -> the runner and its reports -> the command line. ``serve``
# reads what publish writes and nothing of the night.
LAYERS: list[set[str]] = [
    {"errors", "memory", "logs", "interrupts"},
    {"features"},
    {"config"},
    {"io", "split", "metrics", "manifest", "progress", "cluster", "datasets", "runlock",
     "runfolder", "incremental", "cleaning"},
    {"candidates"},
    {"rows"},
    {"rankers"},
    {"recommend"},
    {"evaluate"},
    {"publish"},
    {"report", "html_report", "checks"},
    {"runner"},
    {"serve"},
    {"cli"},
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports (``from x import y`` counts ``x.y`` when it is a
    module, else ``x``)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                out.add(target)
                break
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module}: its package '{top}' is in no layer of LAYERS; add it where "
                         "it sits in the night's order")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_no_import_from_a_later_stage() -> None:
    backwards = sorted(f"{m} imports {t}" for m, targets in _graph().items() for t in targets
                       if m != "pipeline" and _layer(t) > _layer(m))
    assert backwards == []


def test_the_checks_see_imports_inside_functions() -> None:
    graph = _graph()
    # cli imports the runner only inside its command functions (start-up time): still an edge.
    assert "pipeline.runner" in graph["pipeline.cli"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
