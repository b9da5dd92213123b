"""Options shared by every subcommand: --model, --backend, --data, --device, --out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..models._model import DEFAULT_MODEL
from ..models._registry import BACKEND_NAMES

__all__ = ["add_common", "data_from_args", "model_from_args"]


def add_common(parser: argparse.ArgumentParser, *, out: str | None = None) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"embedded model name or local HF directory (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--backend",
        default="hf",
        choices=BACKEND_NAMES,
        help="execution backend (default: hf)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data directory (default: $OYSTER_STEER_DATA or ../shared/data; the starter set is always included)",
    )
    parser.add_argument(
        "--device", default=None, help="torch device (default: cuda if available, else cpu)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(out) if out else None, help=f"output path (default: {out})"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def model_from_args(args: argparse.Namespace) -> Any:
    from ..models._model import load_model

    return load_model(args.model, backend=args.backend, device=args.device)


def data_from_args(args: argparse.Namespace, **kwargs: Any) -> Any:
    """Every available prompt set (shared data when found, plus the starter set), de-duplicated."""
    from ..data import load_all

    return load_all(data_dir=args.data, **kwargs)
