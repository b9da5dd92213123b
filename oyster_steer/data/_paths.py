"""Where the public prompt data lives: ``$OYSTER_STEER_DATA``, else ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

from ._records import DataError

__all__ = ["DATA_ENV_VAR", "default_data_dir", "resolve_data_dir"]

DATA_ENV_VAR = "OYSTER_STEER_DATA"
# oyster_steer/data/_paths.py -> parents[2] is the repository root (the package's parent).
_REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path | None:
    """The data folder: ``$OYSTER_STEER_DATA``, else ``../shared/data`` from the working dir or repo.

    Returns:
        The first candidate that is a directory, or None when there is none.

    Example:
        >>> d = default_data_dir()
        >>> d is None or d.is_dir()
        True
    """
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(
                f"{DATA_ENV_VAR}={env} is not a directory; point it at the folder that holds "
                "advbench/, harmbench/, ... or unset it."
            )
        return path.resolve()
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate.resolve()
    return None


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir`` as a Path, or :func:`default_data_dir`; raises DataError when neither exists."""
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(
                f"data_dir={str(data_dir)!r} is not a directory; pass the folder that holds "
                "advbench/, harmbench/, ... (e.g. ../shared/data)."
            )
        return path
    found = default_data_dir()
    if found is None:
        raise DataError(
            f"no data folder found; set {DATA_ENV_VAR} or pass data_dir= pointing at the folder "
            "that holds advbench/, harmbench/, ... (e.g. ../shared/data)."
        )
    return found
