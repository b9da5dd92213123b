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


# Their examples read the public prompt sets (../shared/data or $OYSTER_STEER_DATA).
NEEDS_SHARED_DATA = {
    "oyster_steer.data",
    "oyster_steer.data._categories",
    "oyster_steer.data._loaders",
    "oyster_steer.data._paths",
}


def _shared_data() -> bool:
    from oyster_steer.data._paths import resolve_data_dir
    from oyster_steer.data._records import DataError

    try:
        resolve_data_dir(None)
    except DataError:
        return False
    return True


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    if name in NEEDS_SHARED_DATA and not _shared_data():
        pytest.skip("no ../shared/data here (set OYSTER_STEER_DATA): its examples load it")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see output)"


def test_examples_are_actually_collected() -> None:
    from oyster_steer.eval import _rules

    assert doctest.testmod(_rules).attempted >= 4
