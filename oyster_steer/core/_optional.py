"""Optional heavy dependencies (TransformerLens, nnsight, plotly): import one or name the fix."""

from __future__ import annotations

import importlib
from types import ModuleType

from ._errors import BackendUnavailableError

__all__ = ["PIP_EXTRAS", "require"]

PIP_EXTRAS = {
    "tl": "pip install 'oyster-steer[tl]'  (transformer-lens>=4.3)",
    "nnsight": "pip install 'oyster-steer[nnsight]'  (nnsight>=0.8)",
    "plot": "pip install 'oyster-steer[plot]'  (plotly)",
}


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise ImportError naming the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BackendUnavailableError(
            f"{module} is not installed; install it with: {PIP_EXTRAS[extra]}"
        ) from err
