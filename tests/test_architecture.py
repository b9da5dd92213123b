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
Modules are private (``_module.py``) yet imported across subpackages by path; a private name
(``_name``), or a private module imported as an object (``from oyster_steer.eval import _harm``),
stays inside the subpackage that owns it.
Imports of the package's own modules inside functions are kept only for modules that import an
optional heavy dependency when loaded (``DEFERRED``), with a comment saying so.
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


# Own modules that import an optional dependency at load time (plotly), so they load on use.
DEFERRED = ("oyster_steer.plotting",)


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(
    name: str, path: Path, nodes: Iterator[ast.AST] | None = None
) -> Iterator[tuple[str, int]]:
    """(imported module of this package, line) for every import in ``path`` (or in ``nodes``)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    for node in nodes if nodes is not None else ast.walk(ast.parse(path.read_text(), str(path))):
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


# Private imports across a subpackage boundary still to be removed, as (importer, imported); the
# test fails once one of these no longer exists, so drop it from here then. Empty since the
# fourteenth session (reproduce's last imports of eval._harm / eval._rules as modules went).
PRIVATE_ALLOWED: frozenset[tuple[str, str]] = frozenset()


def _private_crossings(
    name: str, path: Path, nodes: Iterator[ast.AST] | None = None
) -> Iterator[tuple[str, int]]:
    """(private name or module, line) that ``name`` imports from another subpackage."""
    for target, line in _imports(name, path, nodes):
        last = target.rpartition(".")[2]
        private = last.startswith("_") and not last.startswith("__")
        if private and _unit(target) != _unit(name):
            yield target, line


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


def test_own_modules_are_imported_inside_functions_only_for_optional_dependencies():
    bad = []
    for name, path in _modules().items():
        source = path.read_text()
        functions = [
            node
            for node in ast.walk(ast.parse(source, str(path)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        inner = (n for f in functions for stmt in f.body for n in ast.walk(stmt))
        for target, line in _imports(name, path, inner):
            why = "#" in source.splitlines()[line - 1]
            if not (target.startswith(DEFERRED) and why):
                bad.append(f"{name}:{line} imports {target} inside a function")
    assert not bad, (
        "move these imports to the top of the module (or, for a module that loads an optional "
        "dependency, add it to DEFERRED and say why in a comment):\n" + "\n".join(sorted(set(bad)))
    )


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


def test_private_names_stay_inside_their_subpackage():
    found = {
        (name, target, line)
        for name, path in _modules().items()
        for target, line in _private_crossings(name, path)
    }
    bad = [
        f"{src}:{line} imports {dst}, private to oyster_steer.{_unit(dst)}"
        for src, dst, line in sorted(found)
        if (src, dst) not in PRIVATE_ALLOWED
    ]
    assert not bad, (
        "give these names a public name in their home module and import them by name (a private "
        "module may be imported from by path, not as an object):\n" + "\n".join(bad)
    )
    stale = sorted(PRIVATE_ALLOWED - {(src, dst) for src, dst, _ in found})
    assert not stale, (
        "these imports no longer exist: drop them from PRIVATE_ALLOWED:\n"
        + "\n".join(f"{src} imports {dst}" for src, dst in stale)
    )


@pytest.mark.parametrize(
    ("module", "source", "expect"),
    [
        (
            "oyster_steer.eval._x",
            "from oyster_steer.data._exemplars import _pick\n",
            ["data._exemplars._pick"],
        ),
        (
            "oyster_steer.eval._x",
            "from ..data._exemplars import _THEMES, pick\n",
            ["data._exemplars._THEMES"],
        ),
        ("oyster_steer.cli._x", "from ..eval import _judges\n", ["eval._judges"]),
        (
            "oyster_steer.cli._x",
            "from oyster_steer.eval import _judges, Judges\n",
            ["eval._judges"],
        ),
        ("oyster_steer.cli._x", "import oyster_steer.eval._judges as j\n", ["eval._judges"]),
        ("oyster_steer.cli._x", "def f():\n    from ..eval import _harm\n", ["eval._harm"]),
        ("oyster_steer.cli", "from .._x import _y\n", ["_x._y"]),  # a package's relative import
        ("oyster_steer.cli._x", "from ..eval._judges import PPL_LIMIT\n", []),
        ("oyster_steer.cli._x", "from ._common import _helper\nfrom . import _demo\n", []),
        ("oyster_steer.cli._x", "from ..core._version import __version__\n", []),
        ("oyster_steer.cli._x", "from numpy import _core\n", []),
    ],
)
def test_private_names_check_catches_each_form(module, source, expect):
    path = PACKAGE / "cli" / "_x.py" if module.endswith("._x") else PACKAGE / "cli" / "__init__.py"
    found = [t for t, _ in _private_crossings(module, path, ast.walk(ast.parse(source)))]
    assert found == [f"oyster_steer.{e}" for e in expect]


@pytest.mark.parametrize(
    ("source", "check", "expect"),
    [
        ("from ..cli import main\n", "layers", "layer 'core' may not import 'cli'"),
        ("from .. import load_model\n", "layers", "imports the public facade"),
        ("def f():\n    from ._sites import Site\n", "deferred", "inside a function"),
        ("from ._planted_b import x\n", "cycles", "core._planted -> oyster_steer.core._planted_b"),
        (
            "from ..eval import _harm\n",
            "private",
            "core._planted:1 imports oyster_steer.eval._harm",
        ),
        ("", "stale", "drop them from PRIVATE_ALLOWED"),
    ],
)
def test_contract_catches_a_planted_violation(source, check, expect, tmp_path, monkeypatch):
    """The checker itself: a violation planted in a copy of the package fails it."""
    import shutil

    copy = tmp_path / "oyster_steer"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "starter"))
    (copy / "core" / "_planted.py").write_text(source)
    (copy / "core" / "_planted_b.py").write_text("from ._planted import y\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", copy)
    if check == "stale":  # an allowed import that no longer exists
        allowed = frozenset({("oyster_steer.reproduce._plan_training", "oyster_steer.eval._harm")})
        monkeypatch.setattr(__import__(__name__), "PRIVATE_ALLOWED", allowed)
    test = {
        "layers": test_imports_only_go_down_the_layers,
        "deferred": test_own_modules_are_imported_inside_functions_only_for_optional_dependencies,
        "cycles": test_no_module_cycles,
        "private": test_private_names_stay_inside_their_subpackage,
        "stale": test_private_names_stay_inside_their_subpackage,
    }[check]
    with pytest.raises(AssertionError, match=expect):
        test()
