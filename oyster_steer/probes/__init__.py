"""Probes: linear probes that read risk and intent, their training, layer sweeps, risk-boundary
analyses, per-token traces, and the embedding baseline they are compared with.
"""

from __future__ import annotations

from ._boundary import category_separability, most_borderline, twin_margins
from ._probe import LinearProbe, load_probe, save_probe
from ._sweep import LayerSweep, sweep_layers
from ._trace import TokenTrace, token_trace
from ._train import calibrate_probe, threshold_for_fpr, train_probe

__all__ = [
    "LayerSweep",
    "LinearProbe",
    "TokenTrace",
    "calibrate_probe",
    "category_separability",
    "load_probe",
    "most_borderline",
    "save_probe",
    "sweep_layers",
    "threshold_for_fpr",
    "token_trace",
    "train_probe",
    "twin_margins",
]
