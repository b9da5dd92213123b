"""Options shared by every subcommand: --model, --backend, --data, --device, --out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..data import load_all
from ..models._model import DEFAULT_MODEL, load_model
from ..models._registry import BACKEND_NAMES

__all__ = [
    "add_common",
    "add_device",
    "add_force",
    "add_model",
    "data_from_args",
    "label_mapping",
    "model_from_args",
    "positive_int",
    "refuse_overwrite",
]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def label_mapping(text: str) -> dict[str, str]:
    """argparse type: ``"1=malicious,0=benign"`` -> {"1": "malicious", "0": "benign"}."""
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of VALUE=LABEL pairs such as '1=malicious,0=benign'"
        )
    return {k.strip(): v.strip() for k, v in pairs}


def add_force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing output artifact"
    )


def refuse_overwrite(path: Path, args: argparse.Namespace) -> Path:
    """``path``, unless it exists and ``--force`` was not given (then a one-line error)."""
    if path.is_dir():
        raise IsADirectoryError(
            f"the output {str(path)!r} is a directory: pass a file path with --out"
        )
    if path.exists() and not getattr(args, "force", False):
        raise FileExistsError(
            f"{str(path)!r} already exists: pass --force to overwrite it, or choose another --out"
        )
    return path


def add_model(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--backend``: what :func:`model_from_args` loads."""
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


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: where :func:`model_from_args` puts the model."""
    parser.add_argument(
        "--device", default=None, help="torch device (default: cuda if available, else cpu)"
    )


def add_common(parser: argparse.ArgumentParser, *, out: str | None = None) -> None:
    """``--model``, ``--backend``, ``--data``, ``--device``, ``--out`` (default ``out``), ``--quiet``."""
    add_model(parser)
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data directory (default: $OYSTER_STEER_DATA or ../shared/data; the starter set is always included)",
    )
    add_device(parser)
    parser.add_argument(
        "--out", type=Path, default=Path(out) if out else None, help=f"output path (default: {out})"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def model_from_args(args: argparse.Namespace) -> Any:

    return load_model(args.model, backend=args.backend, device=_device(args.device))


def _device(name: str | None) -> str | None:
    """``--device`` checked before any model is loaded: parseable and present on this machine."""
    import torch

    if name is None:
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"--device {name!r} is not a torch device: use cpu, cuda, cuda:1 or mps"
        ) from None
    present = {
        "cpu": lambda: True,
        "cuda": lambda: (
            torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
        ),
        "mps": lambda: torch.backends.mps.is_available(),
    }.get(device.type, lambda: False)
    if not present():
        raise ValueError(
            f"--device {name!r} is not available on this machine: use --device cpu (or omit --device)"
        )
    return name


def data_from_args(args: argparse.Namespace, **kwargs: Any) -> Any:
    """Every available prompt set (shared data when found, plus the starter set), de-duplicated."""

    if args.data is not None and not Path(args.data).is_dir():
        raise FileNotFoundError(
            f"--data {str(args.data)!r} is not a directory: pass the folder that holds the data sets"
        )
    return load_all(data_dir=args.data, **kwargs)
