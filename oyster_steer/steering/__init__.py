"""Steering: apply a vector or a control plan to a model (``steer`` context, ``patch`` handle)
and calibrate a vector's strength.
"""

from __future__ import annotations

from ._calibrate import CalibrationCache, calibrate_strength
from ._steer import patch, steer

__all__ = ["CalibrationCache", "calibrate_strength", "patch", "steer"]
