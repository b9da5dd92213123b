"""The ``oyster-steer`` command line: one subcommand per step of the workflow.

Each subcommand lives in its own module ``oyster_steer.cli._<name>`` that defines
``register(subparsers) -> None``; the parser it adds sets ``func`` to a callable taking the
parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..core._errors import OysterError

__all__ = ["main"]

# Each module registers its subcommand, in this order.
_SUBCOMMANDS = (
    "_capture",
    "_probe",
    "_vector",
    "_plan",
    "_train_plan",
    "_eval",
    "_gate_eval",
    "_export",
    "_demo",
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``oyster-steer CMD: error: ... (see --help)``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="oyster-steer",
        description="Probe-gated steering toward constructive safety: capture, train probes and vectors, build a control plan, evaluate, export.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``oyster-steer``; errors from oyster_steer print as one sentence."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for reports that cite their command
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except _USER_ERRORS as err:  # what a user's input or files cause: one line, no traceback
        print(f"oyster-steer {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"oyster-steer {args.command}: interrupted", file=sys.stderr)
        return 130


# OysterError covers artifacts, models, sites and widths; OSError paths and permissions;
# ValueError bad values (NaN, ranges, JSON); AssertionError/RuntimeError what torch raises for an
# unusable --device. Anything else is a bug and keeps its traceback.
_USER_ERRORS: tuple[type[BaseException], ...] = (OysterError, OSError, ValueError, LookupError)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return text


if __name__ == "__main__":
    sys.exit(main())
