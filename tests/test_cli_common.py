"""The options and argparse types that the subcommands share (``oyster_steer.cli._common``)."""

from __future__ import annotations

import argparse

import pytest

from oyster_steer.cli import build_parser, main
from oyster_steer.cli._common import add_device, add_model, label_mapping
from oyster_steer.models._model import DEFAULT_MODEL


def test_label_mapping_reads_value_label_pairs():
    assert label_mapping("1=malicious, 0 = benign,") == {"1": "malicious", "0": "benign"}
    assert label_mapping("a=b=c") == {"a": "b=c"}  # only the first '=' splits


def test_label_mapping_refuses_a_pair_without_a_label():
    with pytest.raises(argparse.ArgumentTypeError, match="'1=malicious,0' is not a list of"):
        label_mapping("1=malicious,0")


@pytest.mark.parametrize("command", ["eval", "gate-eval"])
def test_intent_map_errors_are_one_line(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--intent-map", "benign"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --intent-map: 'benign' is not a list of VALUE=LABEL pairs" in err


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


SUBPARSERS = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]


@pytest.mark.parametrize("command", sorted(SUBPARSERS))
@pytest.mark.parametrize("flag", ["--model", "--backend", "--device"])
def test_model_options_are_the_shared_ones_in_every_subcommand(command, flag):
    """demo adds them with add_model/add_device, the others through add_common: one definition."""
    shared = argparse.ArgumentParser()
    add_model(shared)
    add_device(shared)
    want, got = _option(shared, flag), _option(SUBPARSERS[command], flag)
    assert (got.default, got.choices, got.help) == (want.default, want.choices, want.help)


def test_add_model_and_add_device_parse_the_defaults():
    parser = argparse.ArgumentParser()
    add_model(parser)
    add_device(parser)
    args = parser.parse_args(["--backend", "tl"])
    assert (args.model, args.backend, args.device) == (DEFAULT_MODEL, "tl", None)
    with pytest.raises(SystemExit):
        parser.parse_args(["--backend", "onnx"])
