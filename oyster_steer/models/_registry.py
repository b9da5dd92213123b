"""The backend registry: each execution backend's name, module, pip extra and model wrapper.

One row per backend, read by :func:`~oyster_steer.models.from_hf` (the wrapper),
:func:`~oyster_steer.backends.get_backend` (the module) and the CLI (the names). The wrappers
import their library inside the function: ``import oyster_steer`` imports neither
TransformerLens nor nnsight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..core._optional import require

__all__ = ["BACKENDS", "BACKEND_NAMES", "BackendName", "BackendSpec", "backend_spec"]

BackendName = Literal["hf", "tl", "nnsight"]


@dataclass(frozen=True)
class BackendSpec:
    """One backend: ``wrap(hf_model, tokenizer, name)`` returns the object it runs on."""

    name: BackendName
    module: str  # the sibling module of oyster_steer.backends that implements the Backend protocol
    extra: str | None  # the pip extra that installs its library (None: always installed)
    wrap: Callable[[Any, Any, str], Any]


def _wrap_hf(hf: Any, tokenizer: Any, name: str) -> Any:
    return hf


def _wrap_tl(hf: Any, tokenizer: Any, name: str) -> Any:
    require("transformer_lens", "tl")
    from transformer_lens.model_bridge import TransformerBridge  # optional heavy dependency

    return TransformerBridge.boot_transformers(
        name, hf_model=hf, tokenizer=tokenizer, device=str(next(hf.parameters()).device)
    )


def _wrap_nnsight(hf: Any, tokenizer: Any, name: str) -> Any:
    nnsight = require("nnsight", "nnsight")
    return nnsight.TransformersModel(hf, tokenizer=tokenizer)


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec("hf", "oyster_steer.backends._hf", None, _wrap_hf),
        BackendSpec("tl", "oyster_steer.backends._tl", "tl", _wrap_tl),
        BackendSpec("nnsight", "oyster_steer.backends._nnsight", "nnsight", _wrap_nnsight),
    )
}
BACKEND_NAMES: tuple[BackendName, ...] = tuple(spec.name for spec in BACKENDS.values())


def backend_spec(name: str) -> BackendSpec:
    """The registry row for ``name``; a ValueError names the known backends."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: use one of {', '.join(BACKEND_NAMES)}")
    return BACKENDS[name]
