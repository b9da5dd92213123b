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

__all__ = ["main"]

# Modules are imported in this order; a missing one (work in progress) is skipped.
_SUBCOMMANDS = (
    "_capture",
    "_probe",
    "_vector",
    "_plan",
    "_train_plan",
    "_eval",
    "_export",
    "_demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oyster-steer",
        description="Probe-gated steering toward constructive safety: capture, train probes and vectors, build a control plan, evaluate, export.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{__name__}.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``oyster-steer``; errors from oyster_steer print as one sentence."""
    from ..core._errors import OysterError

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for reports that cite their command
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (OysterError, FileNotFoundError) as err:
        print(f"oyster-steer {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
