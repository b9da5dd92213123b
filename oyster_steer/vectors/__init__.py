"""Steering vectors: the ``SteeringVector`` artifact, contrast sets, and training (mean
difference, PCA, or learned by gradient descent with resumable checkpoints).
"""

from __future__ import annotations

from ._learn import LearnConfig
from ._train import train_vector
from ._vector import SteeringVector, load_vector, save_vector

__all__ = ["LearnConfig", "SteeringVector", "load_vector", "save_vector", "train_vector"]
