"""Steering vectors: the ``SteeringVector`` artifact, contrast sets, and training (mean
difference, PCA, or learned by gradient descent with resumable checkpoints).
"""

from __future__ import annotations

from ._intervention import (
    InterventionConfig,
    LowRankIntervention,
    load_intervention,
    save_intervention,
    train_intervention,
)
from ._learn import LearnConfig
from ._train import train_vector
from ._vector import SteeringVector, load_vector, save_vector

__all__ = [
    "InterventionConfig",
    "LearnConfig",
    "LowRankIntervention",
    "SteeringVector",
    "load_intervention",
    "load_vector",
    "save_intervention",
    "save_vector",
    "train_intervention",
    "train_vector",
]
