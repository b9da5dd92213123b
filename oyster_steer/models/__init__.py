"""Models: loading (``load_model``/``from_hf``), per-family hook points, and artifact metadata.

Above ``core``; below ``backends``, which run forward passes on an ``OysterModel``.
"""

from __future__ import annotations

from ._arch import ARCHITECTURES, ArchSpec, HookPoint, arch_spec, hook_point, resolve_spec
from ._artifacts import check_model, load_artifact, model_meta, save_artifact
from ._forward import forward_from, supports_forward_from
from ._model import DEFAULT_MODEL, OysterModel, from_hf, load_model

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_MODEL",
    "ArchSpec",
    "HookPoint",
    "OysterModel",
    "arch_spec",
    "resolve_spec",
    "check_model",
    "forward_from",
    "from_hf",
    "hook_point",
    "load_artifact",
    "load_model",
    "model_meta",
    "save_artifact",
    "supports_forward_from",
]
