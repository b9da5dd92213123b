"""Steering vectors: the ``SteeringVector`` artifact, training from your own pairs or the Oyster
contrasts (mean difference, PCA, logistic, learned by gradient descent with resumable
checkpoints, or your own aggregator), and interop with repeng / llama.cpp / steering-vectors.
"""

from __future__ import annotations

from ._interop import load_control_vector, load_steering_vectors, save_control_vector
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
    "load_control_vector",
    "load_intervention",
    "load_steering_vectors",
    "load_vector",
    "save_control_vector",
    "save_intervention",
    "save_vector",
    "train_intervention",
    "train_vector",
]
