"""Activations: capture residual-stream activations (``capture``), cache them on disk, and score
replies under a model (log-probabilities used by vector training and strength calibration).
"""

from __future__ import annotations

from ._cache import cached_capture
from ._capture import Activations, ShardedActivations, capture
from ._scoring import FrozenInputs, frozen_inputs

__all__ = [
    "Activations",
    "FrozenInputs",
    "ShardedActivations",
    "cached_capture",
    "capture",
    "frozen_inputs",
]
