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

from ._errors import (
    ArtifactError,
    BackendUnavailableError,
    EmptyInputError,
    ModelMismatchError,
    OysterError,
    SiteError,
    UnknownModelError,
    WidthMismatchError,
)
from ._models import DEFAULT_MODEL, OysterModel, from_hf, load_model
from ._sites import SITE_KINDS, Site, parse_site, resolve_site

__version__ = "0.1.0"

# Public name -> private module that defines it (imported on first attribute access).
_LAZY: dict[str, str] = {
    "Activations": "._capture",
    "ShardedActivations": "._capture",
    "capture": "._capture",
    "LinearProbe": "._probe",
    "train_probe": "._probe",
    "save_probe": "._probe",
    "calibrate_probe": "._probe",
    "threshold_for_fpr": "._probe",
    "TokenTrace": "._trace",
    "load_probe": "._probe",
    "LayerSweep": "._sweep",
    "sweep_layers": "._sweep",
    "twin_margins": "._boundary",
    "most_borderline": "._boundary",
    "category_separability": "._boundary",
    "token_trace": "._trace",
    "SteeringVector": "._vector",
    "save_vector": "._vector",
    "load_vector": "._vector",
    "train_vector": "._train_vector",
    "calibrate_strength": "._calibrate",
    "steer": "._steer",
    "patch": "._steer",
    "ControlPlan": "._control",
    "Policy": "._policy",
    "DEFAULT_PAYOFF": "._policy",
    "save_plan": "._control",
    "load_plan": "._control",
    "bind": "._control",
    "LearnConfig": "._learn",
    "export_patched": "._export",
    "ExportManifest": "._export",
    "ExportError": "._export_routes",
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
    from ._boundary import category_separability, most_borderline, twin_margins
    from ._calibrate import calibrate_strength
    from ._capture import Activations, ShardedActivations, capture
    from ._control import ControlPlan, bind, load_plan, save_plan
    from ._export import ExportManifest, export_patched
    from ._export_routes import ExportError
    from ._learn import LearnConfig
    from ._policy import DEFAULT_PAYOFF, Policy
    from ._probe import (
        LinearProbe,
        calibrate_probe,
        load_probe,
        save_probe,
        threshold_for_fpr,
        train_probe,
    )
    from ._steer import patch, steer
    from ._sweep import LayerSweep, sweep_layers
    from ._trace import TokenTrace, token_trace
    from ._train_vector import train_vector
    from ._vector import SteeringVector, load_vector, save_vector
