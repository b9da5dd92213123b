"""The import contract: the package's subpackages form one-way layers, and its modules no cycle.

Read from the source with ``ast`` (nothing is imported), counting every import of the package's
own modules: at module level, inside functions and under ``TYPE_CHECKING`` alike, so a cycle
cannot hide behind a deferred import. The layers, top to bottom (siblings on one line import
neither each other):

    cli | testing | serving
    report | reproduce
    plotting
    eval
    steering | export
    control
    probes | vectors
    activations
    backends
    models | data
    core

``oyster_steer/__init__.py`` (the public facade) may import any layer; no module imports it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "oyster_steer"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "testing", "serving"),
    ("report", "reproduce"),
    ("plotting",),
    ("eval",),
    ("steering", "export"),
    ("control",),
    ("probes", "vectors"),
    ("activations",),
    ("backends",),
    ("models", "data"),
    ("core",),
)


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module of this package, line) for every import in ``path``."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "oyster_steer":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "oyster_steer":
                continue
            for alias in node.names:  # `from . import _hf` names a module, not the package
                yield f"{target}.{alias.name}", node.lineno


def _edges() -> set[tuple[str, str, int]]:
    modules = _modules()
    edges = set()
    for name, path in modules.items():
        for target, line in _imports(name, path):
            while target not in modules:  # `from .x import name`: the module is the prefix
                target = target.rpartition(".")[0]
            if target != name:
                edges.add((name, target, line))
    return edges


def _unit(module: str) -> str | None:
    """The layer unit (subpackage or top-level module) of ``oyster_steer.<unit>...``."""
    parts = module.split(".")
    return parts[1].removeprefix("_") if len(parts) > 1 else None


def _layer(unit: str) -> int:
    for index, names in enumerate(LAYERS):
        if unit in names:
            return index
    raise AssertionError(
        f"oyster_steer.{unit} is in no layer: add it to LAYERS in tests/test_architecture.py"
    )


def test_every_subpackage_is_in_a_layer():
    for module in _modules():
        unit = _unit(module)
        if unit is not None:
            _layer(unit)


def test_imports_only_go_down_the_layers():
    bad = []
    for src, dst, line in sorted(_edges()):
        a, b = _unit(src), _unit(dst)
        if a is None or a == b:
            continue
        if b is None:
            bad.append(f"{src}:{line} imports the public facade oyster_steer")
        elif _layer(a) >= _layer(b):
            bad.append(f"{src}:{line} imports {dst} (layer {a!r} may not import {b!r})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_module_cycles():
    graph: dict[str, set[str]] = {}
    for src, dst, _ in _edges():
        graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    ("source", "expect"),
    [
        ("from ..cli import main\n", "layer 'core' may not import 'cli'"),
        ("from .. import load_model\n", "imports the public facade"),
    ],
)
def test_contract_catches_an_upward_import(source, expect, tmp_path, monkeypatch):
    """The checker itself: a planted upward import in a copy of the package fails it."""
    import shutil

    copy = tmp_path / "oyster_steer"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "starter"))
    (copy / "core" / "_planted.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", copy)
    with pytest.raises(AssertionError, match=expect):
        test_imports_only_go_down_the_layers()
