"""Every docstring example in the package runs (those that need a model say ``+SKIP``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import oyster_steer

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(oyster_steer.__path__, "oyster_steer.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see output)"


def test_examples_are_actually_collected() -> None:
    from oyster_steer.eval import _rules

    assert doctest.testmod(_rules).attempted >= 4
