"""Steering vectors: one residual-stream direction per hook site, tied to the model it was made for.

A :class:`SteeringVector` is a small immutable value. Arithmetic returns new vectors and refuses
to mix models, site sets or widths::

    v = osteer.load_vector("vectors/smollm2-135m-instruct/constructive.safetensors", model)
    w = 0.5 * v - 0.25 * refusal          # same model, same sites
    with osteer.steer(model, w):          # adds strength * direction at every site
        ...
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from ..core._errors import (
    ArtifactError,
    EmptyInputError,
    ModelMismatchError,
    SiteError,
    WidthMismatchError,
    require_finite,
)
from ..core._sites import Site, parse_site, resolve_site
from ..core._version import __version__
from ..models._artifacts import (
    check_model,
    check_not_baked,
    load_artifact,
    meta_field,
    save_artifact,
)

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["SteeringVector", "load_vector", "save_vector"]

_FORMAT, _VERSION = "oyster_steer.vector", 1


@dataclass(frozen=True, eq=False)
class SteeringVector:
    """Directions to add to the residual stream, one (d,) tensor per canonical hook site.

    Attributes:
        directions: site name (``"blocks.12.hook_resid_post"``, non-negative layer) -> (d,) tensor.
        model_name, model_fingerprint, d_model, n_layers: the model it was made for.
        method: how it was made (``mean_diff``, ``pca``, ``learned``, ``custom``, ...).
        strength: the recommended multiplier; :func:`oyster_steer.steer` adds
            ``strength * direction`` unless told otherwise.
        meta: free-form string metadata (training data, calibration, ...).
        model_weights: hash of every weight of that model (``OysterModel.weights_id``); None
            for vectors written before it was recorded (checked on the fingerprint only).

    Example:
        >>> v = SteeringVector.from_tensors(model, {"blocks.-1.hook_resid_post": d})  # doctest: +SKIP
        >>> (2 * v - v).sites                                                       # doctest: +SKIP
        [Site(layer=29, kind='resid_post')]
    """

    directions: Mapping[str, torch.Tensor]
    model_name: str
    model_fingerprint: str
    d_model: int
    n_layers: int
    method: str = "custom"
    strength: float = 1.0
    meta: Mapping[str, str] = field(default_factory=dict)
    model_weights: str | None = None

    def __post_init__(self) -> None:
        if not self.directions:
            raise EmptyInputError(
                "a SteeringVector needs at least one site: pass {site: (d,) tensor}"
            )
        checked = {}
        for name, tensor in sorted(self.directions.items(), key=lambda kv: parse_site(kv[0]).order):
            site = resolve_site(name, self.n_layers)
            if site.name != name:
                raise SiteError(
                    f"site {name!r} is not canonical (expected {site.name!r}): build the vector with "
                    "SteeringVector.from_tensors, which resolves negative layers"
                )
            checked[name] = _check_direction(name, tensor, self.d_model)
        object.__setattr__(self, "directions", MappingProxyType(checked))
        object.__setattr__(
            self, "meta", MappingProxyType({str(k): str(v) for k, v in self.meta.items()})
        )
        object.__setattr__(self, "strength", float(self.strength))
        require_finite(self.strength, f"strength={self.strength}")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_tensors(
        cls,
        model: OysterModel,
        tensors: Mapping[str, torch.Tensor] | Mapping[Site, torch.Tensor],
        *,
        method: str = "custom",
        strength: float = 1.0,
        meta: Mapping[str, str] | None = None,
    ) -> SteeringVector:
        """Build a vector for ``model`` from ``{site: (d,) tensor}``; sites may use negative layers.

        Example:
            >>> v = SteeringVector.from_tensors(model, {"blocks.6.hook_resid_post": torch.randn(576)})  # doctest: +SKIP
        """
        directions: dict[str, torch.Tensor] = {}
        for key, tensor in tensors.items():
            site = resolve_site(key, model.n_layers)
            if site.name in directions:
                raise SiteError(
                    f"site {site.name!r} is given twice (as {key!r}): list each site once"
                )
            directions[site.name] = torch.as_tensor(tensor).detach().clone()
        return cls(
            directions=directions,
            **_identity(model),
            method=method,
            strength=strength,
            meta=dict(meta or {}),
        )

    # -- views ---------------------------------------------------------------------------------
    @property
    def sites(self) -> list[Site]:
        """The hook sites, in forward-pass order."""
        return [parse_site(name) for name in self.directions]

    def norms(self) -> dict[str, float]:
        """L2 norm of each site's direction (host floats; not for hot paths)."""
        return {name: float(t.float().norm()) for name, t in self.directions.items()}

    def __repr__(self) -> str:
        sites = ", ".join(self.directions)
        return f"SteeringVector(method={self.method!r}, model={self.model_name!r}, sites=[{sites}], strength={self.strength:g})"

    # -- arithmetic: every operation returns a new vector --------------------------------------
    def _map(self, fn: Any, **changes: Any) -> SteeringVector:
        return replace(
            self, directions={k: fn(k, v) for k, v in self.directions.items()}, **changes
        )

    def _check_compatible(self, other: SteeringVector, op: str) -> None:
        if other.d_model != self.d_model:
            raise WidthMismatchError(
                f"cannot {op} vectors of width {self.d_model} and {other.d_model}: combine vectors made for the same model"
            )
        if (other.model_fingerprint, other.n_layers) != (self.model_fingerprint, self.n_layers):
            raise ModelMismatchError(
                f"cannot {op} a vector for model {self.model_name!r} (fingerprint {self.model_fingerprint}) and one for "
                f"{other.model_name!r} (fingerprint {other.model_fingerprint}): combine vectors made for the same model"
            )
        if set(other.directions) != set(self.directions):
            raise SiteError(
                f"cannot {op} vectors with different sites ({', '.join(self.directions)} vs {', '.join(other.directions)}): "
                "train both at the same sites"
            )

    def _combine(self, other: Any, sign: float, op: str) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        self._check_compatible(other, op)
        method = self.method if other.method == self.method else "combined"

        def fn(name: str, t: torch.Tensor) -> torch.Tensor:
            return t + sign * other.directions[name].to(t.device, t.dtype)

        return self._map(fn, method=method)

    def __add__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, 1.0, "add")

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, -1.0, "subtract")

    def __mul__(self, scalar: float) -> SteeringVector:
        if isinstance(scalar, bool) or not isinstance(scalar, numbers.Real):
            return NotImplemented
        if not math.isfinite(float(scalar)):
            raise ValueError(f"cannot scale a steering vector by {scalar}: pass a finite number")
        return self._map(lambda _, t: t * float(scalar))

    __rmul__ = __mul__

    def __truediv__(self, scalar: float) -> SteeringVector:
        if isinstance(scalar, bool) or not isinstance(scalar, numbers.Real):
            return NotImplemented
        if float(scalar) == 0.0:
            raise ZeroDivisionError("cannot divide a steering vector by 0: pass a non-zero number")
        return self * (1.0 / float(scalar))

    def __neg__(self) -> SteeringVector:
        return self * -1.0

    def scale(self, s: float) -> SteeringVector:
        """``s * self``, as a method for chains like ``v.normalize().scale(4)``."""
        return self * s

    def normalize(self) -> SteeringVector:
        """Each site's direction scaled to unit L2 norm (a zero direction stays zero)."""
        return self._map(lambda _, t: t / t.norm().clamp_min(torch.finfo(t.dtype).tiny))

    def with_strength(self, strength: float, **meta: str) -> SteeringVector:
        """The same directions with another recommended strength (and extra metadata)."""
        return replace(self, strength=float(strength), meta={**self.meta, **meta})

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> SteeringVector:
        """A copy with every direction on ``device`` and/or in ``dtype``."""
        return self._map(lambda _, t: t.to(device=device, dtype=dtype))

    def allclose(self, other: SteeringVector, *, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
        """True when ``other`` has the same model, sites and (numerically) the same directions."""
        try:
            self._check_compatible(other, "compare")
        except (WidthMismatchError, ModelMismatchError, SiteError):
            return False
        return all(
            torch.allclose(t.float().cpu(), other.directions[k].float().cpu(), rtol=rtol, atol=atol)
            for k, t in self.directions.items()
        )

    def check_model(self, model: OysterModel) -> None:
        """Raise ModelMismatchError unless this vector was made for ``model`` (and not baked in)."""
        check_not_baked(self.directions, model, "steering vector")  # the more specific error first
        check_model(_identity_meta(self), model, what="steering vector")

    def retarget(self, model: OysterModel) -> SteeringVector:
        """The same directions recorded as made for ``model`` (a deliberate transfer)."""
        meta = {**self.meta, "transferred_from": self.model_weights or self.model_fingerprint}
        return replace(self, **_identity(model), meta=meta)


def _check_direction(name: str, tensor: Any, d_model: int) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(
            f"the direction at {name!r} is a {type(tensor).__name__}: pass a torch.Tensor of shape ({d_model},)"
        )
    if tensor.shape != (d_model,):
        raise WidthMismatchError(
            f"the direction at {name!r} has shape {tuple(tensor.shape)}, but the model's residual width is {d_model}: "
            f"pass one ({d_model},) tensor per site"
        )
    if not tensor.is_floating_point():
        raise TypeError(
            f"the direction at {name!r} has dtype {tensor.dtype}: pass a floating-point tensor"
        )
    require_finite(tensor, f"the direction at {name!r}")
    return tensor.detach()


def _identity(model: OysterModel) -> dict[str, Any]:
    return {
        "model_name": model.name,
        "model_fingerprint": model.fingerprint,
        "d_model": model.d_model,
        "n_layers": model.n_layers,
        "model_weights": model.weights_id,
    }


def _identity_meta(vector: SteeringVector) -> dict[str, str]:
    weights = vector.model_weights
    return {
        "model_name": vector.model_name,
        "model_fingerprint": vector.model_fingerprint,
        "d_model": str(vector.d_model),
        "n_layers": str(vector.n_layers),
    } | ({"model_weights": weights} if weights else {})


def save_vector(vector: SteeringVector, path: str | Path) -> Path:
    """Write ``vector`` to a safetensors file with its model identity and provenance as metadata.

    The metadata records the format version, model fingerprint, sites, method, recommended
    strength and ``vector.meta`` (e.g. ``data``: a description of the training data).

    Example:
        >>> save_vector(v, "vectors/my-model/constructive.safetensors")  # doctest: +SKIP
    """

    meta = {
        **_identity_meta(vector),
        "method": vector.method,
        "strength": repr(vector.strength),
        "sites": json.dumps(list(vector.directions)),
        "meta": json.dumps(dict(vector.meta), sort_keys=True),
        "oyster_steer_version": __version__,
    }
    tensors = {name: t.float() for name, t in vector.directions.items()}
    return save_artifact(path, tensors, meta, format=_FORMAT, version=_VERSION)


def load_vector(
    path: str | Path,
    model: OysterModel | None = None,
    *,
    device: str | torch.device = "cpu",
    transfer: bool = False,
) -> SteeringVector:
    """Read a vector written by :func:`save_vector`; with ``model``, refuse one made for another model.

    ``transfer=True`` (with ``model``) applies a vector made for a related model deliberately
    (base -> fine-tune): the fingerprint and weights checks are skipped with a warning that
    says so, and the vector comes back recorded as made for ``model``
    (``meta["transferred_from"]`` keeps the original).

    Example:
        >>> v = load_vector("vectors/smollm2-135m-instruct/constructive.safetensors", model)  # doctest: +SKIP
    """
    tensors, meta = load_artifact(path, format=_FORMAT, max_version=_VERSION, device=device)
    if model is not None:
        check_model(meta, model, what="steering vector", transfer=transfer)
    sites = meta_field(path, meta, "sites", json.loads, list(tensors))
    extra = meta_field(path, meta, "meta", json.loads, {})
    if not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
        raise ArtifactError(
            f"{str(path)!r}: metadata field 'sites' must be a JSON list of site names: re-create the file"
        )
    if not isinstance(extra, dict):
        raise ArtifactError(
            f"{str(path)!r}: metadata field 'meta' must be a JSON object: re-create the file"
        )
    missing = [s for s in sites if s not in tensors]
    if missing:
        raise ArtifactError(
            f"{str(path)!r} lists sites {missing} but holds no tensor for them: re-create the file"
        )
    try:
        vector = SteeringVector(
            directions={s: tensors[s] for s in sites},
            model_name=meta.get("model_name", "?"),
            model_fingerprint=meta.get("model_fingerprint", "?"),
            d_model=meta_field(path, meta, "d_model", int),
            n_layers=meta_field(path, meta, "n_layers", int),
            method=meta.get("method", "custom"),
            strength=meta_field(path, meta, "strength", float, "1.0"),
            meta=extra,
            model_weights=meta.get("model_weights"),
        )
    except ArtifactError:
        raise
    except (TypeError, ValueError) as err:
        raise ArtifactError(f"{str(path)!r} holds an invalid steering vector: {err}") from err
    return vector.retarget(model) if transfer and model is not None else vector
