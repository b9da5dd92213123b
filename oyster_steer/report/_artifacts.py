"""Finding (or making) the probes, vectors and control plan the demo needs for a model.

Shipped artifacts live in the repository next to the package: ``probes/<model>/{risk,intent}``,
``vectors/<model>/{constructive,refusal}`` and the control pack ``vectors/<model>/control``.
When one is missing it is trained with its owner's function on the starter set and cached under
``runs/demo/artifacts`` (never written into the repository).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["REPO_ROOT", "model_dirname", "shipped"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def model_dirname(model: OysterModel) -> str:
    """The folder name artifacts of ``model`` are shipped under (the embedded name or the dir name)."""
    return Path(model.name).name if ("/" in model.name or Path(model.name).is_dir()) else model.name


def shipped(kind: str, model: OysterModel, name: str) -> Path | None:
    """``REPO_ROOT/<kind>/<model>/<name>.safetensors`` when it exists, else None."""
    path = REPO_ROOT / kind / model_dirname(model) / f"{name}.safetensors"
    return path if path.is_file() else None
