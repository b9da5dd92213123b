"""oyster_steer: probe-gated steering of language models toward constructive safety.

Linear probes over the residual stream read risk and intent; steering vectors (mean-difference,
PCA or learned by gradient descent) write constructive guidance; a control plan composes them at
inference in fused, host-sync-free hooks that work on Hugging Face transformers, TransformerLens
and nnsight.

Example:
    >>> import oyster_steer as osteer
    >>> model = osteer.load_model()                       # doctest: +SKIP
    >>> acts = osteer.capture(model, ["Hi!"], "resid_post")  # doctest: +SKIP

Heavy submodules load on first use: ``import oyster_steer`` imports neither TransformerLens,
nnsight nor plotly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core._errors import (
    ArtifactError,
    BackendUnavailableError,
    EmptyInputError,
    ModelMismatchError,
    OysterError,
    SiteError,
    UnknownModelError,
    UnsafeBindingError,
    WidthMismatchError,
)
from .core._sites import SITE_KINDS, Site, parse_site, resolve_site
from .core._version import __version__
from .models._model import DEFAULT_MODEL, OysterModel, from_hf, load_model

# Public name -> private module that defines it (imported on first attribute access).
_LAZY: dict[str, str] = {
    "Activations": ".activations._capture",
    "ShardedActivations": ".activations._capture",
    "capture": ".activations._capture",
    "LinearProbe": ".probes._probe",
    "train_probe": ".probes._train",
    "save_probe": ".probes._probe",
    "calibrate_probe": ".probes._train",
    "threshold_for_fpr": ".probes._train",
    "TokenTrace": ".probes._trace",
    "load_probe": ".probes._probe",
    "LayerSweep": ".probes._sweep",
    "sweep_layers": ".probes._sweep",
    "twin_margins": ".probes._boundary",
    "most_borderline": ".probes._boundary",
    "category_separability": ".probes._boundary",
    "token_trace": ".probes._trace",
    "SteeringVector": ".vectors._vector",
    "save_vector": ".vectors._vector",
    "load_vector": ".vectors._vector",
    "train_vector": ".vectors._train",
    "save_control_vector": ".vectors._interop",
    "load_control_vector": ".vectors._interop",
    "load_steering_vectors": ".vectors._interop",
    "calibrate_strength": ".steering._calibrate",
    "steer": ".steering._steer",
    "patch": ".steering._steer",
    "ControlPlan": ".control._plan",
    "DecisionLog": ".control._runtime",
    "Policy": ".control._policy",
    "DEFAULT_PAYOFF": ".control._policy",
    "save_plan": ".control._pack",
    "load_plan": ".control._pack",
    "bind": ".control._plan",
    "ThinkMarkers": ".control._spans",
    "LearnConfig": ".vectors._learn",
    "export_patched": ".export._export",
    "ExportManifest": ".export._export",
    "ExportError": ".export._routes",
}

__all__ = [
    "DEFAULT_MODEL",
    "SITE_KINDS",
    "ArtifactError",
    "BackendUnavailableError",
    "EmptyInputError",
    "ModelMismatchError",
    "OysterError",
    "OysterModel",
    "Site",
    "SiteError",
    "UnknownModelError",
    "UnsafeBindingError",
    "WidthMismatchError",
    "from_hf",
    "load_model",
    "parse_site",
    "resolve_site",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'oyster_steer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; at runtime these load lazily (see _LAZY)
    from .activations._capture import Activations, ShardedActivations, capture
    from .control._pack import load_plan, save_plan
    from .control._plan import ControlPlan, bind
    from .control._policy import DEFAULT_PAYOFF, Policy
    from .control._runtime import DecisionLog
    from .control._spans import ThinkMarkers
    from .export._export import ExportManifest, export_patched
    from .export._routes import ExportError
    from .probes._boundary import category_separability, most_borderline, twin_margins
    from .probes._probe import LinearProbe, load_probe, save_probe
    from .probes._sweep import LayerSweep, sweep_layers
    from .probes._trace import TokenTrace, token_trace
    from .probes._train import calibrate_probe, threshold_for_fpr, train_probe
    from .steering._calibrate import calibrate_strength
    from .steering._steer import patch, steer
    from .vectors._interop import load_control_vector, load_steering_vectors, save_control_vector
    from .vectors._learn import LearnConfig
    from .vectors._train import train_vector
    from .vectors._vector import SteeringVector, load_vector, save_vector
