"""The backend registry: one row per backend, used by models, backends and the CLI alike."""

from __future__ import annotations

import argparse
import importlib

import pytest

from oyster_steer.backends import get_backend
from oyster_steer.cli._common import add_common
from oyster_steer.core._optional import PIP_EXTRAS
from oyster_steer.models._registry import BACKEND_NAMES, BACKENDS, backend_spec


def test_every_backend_has_a_module_with_the_protocol_and_a_pip_extra():
    assert BACKEND_NAMES == ("hf", "tl", "nnsight")
    for name, spec in BACKENDS.items():
        assert spec.name == name
        module = importlib.import_module(spec.module)
        assert all(callable(getattr(module, f)) for f in ("forward", "add_hooks", "generate"))
        assert spec.extra is None or spec.extra in PIP_EXTRAS
        assert get_backend(name) is module


def test_the_cli_offers_exactly_the_registered_backends():
    parser = argparse.ArgumentParser()
    add_common(parser)
    action = next(a for a in parser._actions if a.dest == "backend")
    assert tuple(action.choices) == BACKEND_NAMES


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'jax': use one of hf, tl, nnsight"):
        backend_spec("jax")


def test_the_hf_wrapper_is_the_model_itself(tiny):
    assert backend_spec("hf").wrap(tiny.hf, tiny.tokenizer, tiny.name) is tiny.hf
