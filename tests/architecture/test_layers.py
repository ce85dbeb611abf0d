"""The package's shape, read from its source: no import cycle, no reach into another
module's private names, one place that builds a Trainer, models below tasks and methods."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rsfuse

SRC = Path(rsfuse.__file__).resolve().parent.parent
MODULES = {
    ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
    for p in (SRC / "rsfuse").rglob("*.py")
}


def owner(name: str) -> str | None:
    """The module of ``rsfuse`` that defines the dotted ``name`` (itself, or a parent)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path, top_level_only: bool) -> list[tuple[str, str]]:
    """``(module, imported name)`` of every rsfuse import in ``path``: all of them, or
    only those that run when the module is imported (not inside functions)."""
    tree = ast.parse(path.read_text())
    if top_level_only:
        nodes: list[ast.AST] = []
        todo: list[ast.AST] = list(tree.body)
        while todo:
            node = todo.pop()
            nodes.append(node)
            if isinstance(node, ast.If | ast.Try | ast.With):  # still run at import time
                todo += [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
    else:
        nodes = list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rsfuse"):
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names if a.name.startswith("rsfuse")]
    return out


def graph(top_level_only: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        targets = set()
        for module, name in imports(path, top_level_only):
            target = owner(f"{module}.{name}") if name else owner(module)
            if target and target != mod:
                targets.add(target)
        edges[mod] = targets
    return edges


@pytest.mark.parametrize("top_level_only", [True, False], ids=["at-import", "with-lazy"])
def test_modules_import_without_a_cycle(top_level_only: bool) -> None:
    """No cycle among the imports that run at import time, nor once the imports inside
    functions (lazy ones) are counted: the layers stay one-directional."""
    edges = graph(top_level_only=top_level_only)
    if not top_level_only:  # the package root re-exports load_bundle lazily (a facade)
        edges = {m: ts - {"rsfuse"} for m, ts in edges.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycles.append([*path[path.index(n) :], n] if n in path else [m, n])
            elif n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_another_modules_private_name() -> None:
    found = [
        f"{mod} imports {name} from {module}"
        for mod, path in MODULES.items()
        for module, name in imports(path, top_level_only=False)
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not found, found


def test_models_do_not_import_tasks_methods_or_experiments() -> None:
    upper = ("rsfuse.tasks", "rsfuse.methods", "rsfuse.experiments", "rsfuse.training")
    edges = graph(top_level_only=False)
    bad = [(m, t) for m, ts in edges.items() if m.startswith("rsfuse.models")
           for t in ts if t.startswith(upper)]  # fmt: skip
    assert not bad, bad


def test_nothing_imports_the_experiments_or_the_demo() -> None:
    edges = graph(top_level_only=False)
    bad = [(m, t) for m, ts in edges.items() if not m.startswith("rsfuse.experiments")
           for t in ts if t.startswith("rsfuse.experiments")]  # fmt: skip
    bad += [(m, t) for m, ts in edges.items() for t in ts if t == "rsfuse.experiments.demo"]
    assert not bad, bad


def test_one_place_builds_a_trainer() -> None:
    places = []
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("Trainer", "LightningCLI", "RsfuseCLI"):
                    places.append(f"{mod}:{node.lineno} {name}")
    assert [p.split(":")[0] for p in places] == ["rsfuse.training.cli"] * len(places), places
    assert places, "no Trainer is built anywhere"
