"""Plotly figures for analysis notebooks and the demo report. Needs ``pip install 'oyster-steer[plot]'``.

The core package never imports this module. Each function returns a ``plotly.graph_objects.Figure``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..core._optional import require

require("plotly", "plot")

_LAZY: dict[str, str] = {
    "plot_layer_sweep": "._probes",
    "plot_boundary": "._probes",
    "plot_token_trace": "._probes",
    "plot_confusion": "._probes",
    "plot_strength_curve": "._vectors",
    "plot_payoffs": "._control",
    "plot_decisions": "._control",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'oyster_steer.plotting' has no attribute {name!r}")
