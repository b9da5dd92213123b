"""The options and argparse types that the subcommands share (``oyster_steer.cli._common``)."""

from __future__ import annotations

import argparse

import pytest

from oyster_steer.cli import main
from oyster_steer.cli._common import label_mapping


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
