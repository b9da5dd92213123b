"""What ``export_patched`` accepts, turned into tensors: summed site vectors, a removal basis,
and a control plan split into its unconditional and probe-gated parts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..core._errors import EmptyInputError, WidthMismatchError
from ..core._sites import Site, resolve_site
from ..models._artifacts import check_model
from ._routes import ExportError, orthonormal

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["ablation_basis", "collect_additive", "split_plan"]


def _vector_meta(vector: Any) -> dict[str, str]:
    keys = ("model_name", "model_fingerprint", "model_weights", "d_model", "n_layers")
    return {k: str(getattr(vector, k)) for k in keys if getattr(vector, k, None) is not None}


def _check_width(model: OysterModel, name: str, vec: torch.Tensor) -> torch.Tensor:
    if vec.shape != (model.d_model,):
        raise WidthMismatchError(
            f"the vector at {name!r} has shape {tuple(vec.shape)}, but the model's residual width is "
            f"{model.d_model}: pass one (d_model,) vector per site"
        )
    return vec.detach().to(model.device, torch.float32)


def _from_vector(
    model: OysterModel, vector: Any, strength: float | None
) -> tuple[dict[Site, torch.Tensor], list[dict[str, Any]]]:
    """site -> strength * direction for one SteeringVector, with provenance records."""
    check_model(_vector_meta(vector), model, what="steering vector")
    scale = float(strength if strength is not None else getattr(vector, "strength", 1.0))
    out, records = {}, []
    for name, direction in vector.directions.items():
        site = resolve_site(name, model.n_layers)
        vec = _check_width(model, name, direction)
        out[site] = scale * vec
        records.append(
            {"site": site.name, "strength": scale, "source": getattr(vector, "method", "vector")}
        )
    return out, records


def _from_mapping(
    model: OysterModel, vectors: Mapping[str, torch.Tensor], strength: float | None
) -> tuple[dict[Site, torch.Tensor], list[dict[str, Any]]]:
    scale = 1.0 if strength is None else float(strength)
    out = {
        resolve_site(k, model.n_layers): scale * _check_width(model, k, v)
        for k, v in vectors.items()
    }
    return out, [{"site": s.name, "strength": scale, "source": "mapping"} for s in out]


def collect_additive(
    model: OysterModel, source: Any, strength: float | None
) -> tuple[dict[Site, torch.Tensor], list[dict[str, Any]]]:
    """Sum every unconditional vector per site; accepts a SteeringVector, a list of them, or a mapping."""
    if source is None:
        return {}, []
    if isinstance(source, Mapping):
        return _from_mapping(model, source, strength)
    parts = list(source) if isinstance(source, Sequence) else [source]
    total: dict[Site, torch.Tensor] = {}
    records: list[dict[str, Any]] = []
    for vector in parts:
        if hasattr(vector, "parts") and hasattr(vector, "rank"):  # a LowRankIntervention
            raise TypeError(
                "cannot bake a LowRankIntervention: its edit depends on the activation, which no bias can "
                "express; bind it in a ControlPlan and export with allow_conditional=True (it goes to the "
                "control pack beside the checkpoint), or serve it with oyster_steer.patch(model, plan)"
            )
        if not hasattr(vector, "directions"):
            raise TypeError(
                f"cannot export a {type(vector).__name__}: pass a SteeringVector, a list of them, a ControlPlan, or {{site: tensor}}"
            )
        vecs, recs = _from_vector(model, vector, strength)
        for site, vec in vecs.items():
            total[site] = total[site] + vec if site in total else vec
        records += recs
    return total, records


def ablation_basis(model: OysterModel, ablate: Any) -> tuple[torch.Tensor | None, list[str]]:
    """An orthonormal (d, k) basis of the directions to remove, and the sites they came from."""
    if ablate is None:
        return None, []
    if isinstance(ablate, torch.Tensor):
        items = (
            {"direction": ablate}
            if ablate.ndim == 1
            else {f"direction{i}": r for i, r in enumerate(ablate)}
        )
    elif hasattr(ablate, "directions"):
        check_model(_vector_meta(ablate), model, what="ablation vector")
        items = dict(ablate.directions)
    else:
        items = dict(ablate)
    if not items:
        raise EmptyInputError(
            "ablate holds no direction: pass a SteeringVector, {site: (d,) tensor} or a (d,) tensor"
        )
    rows = torch.stack([_check_width(model, k, v) for k, v in items.items()])  # (k, d)
    if bool((rows.norm(dim=-1) == 0).any()):
        raise ExportError("an ablation direction is all zeros: remove it from ablate")
    return orthonormal(rows / rows.norm(dim=-1, keepdim=True)), list(items)


def split_plan(
    model: OysterModel, source: Any, strength: float | None
) -> tuple[Any, Any, list[Any]]:
    """(unconditional vectors, conditional part or None, unconditional operator bindings) of what
    was passed; only plans have the last two.

    A plan's ``strength`` multiplies every binding (as in ``patch(model, plan, strength)``), so
    the baked part and the packed part stay consistent. An ``ablate`` / ``ablate_add`` / ``clamp``
    binding is unconditional under the same rules as a vector (one strength for every strategy,
    every position, a constant schedule of 1, every site after the probe's read).
    """
    if not hasattr(source, "conditional_parts"):
        return source, None, []
    check_model(source.identity, model, what="control plan")
    if strength is not None:
        source = _scaled(source, float(strength))
    static = source.static_vectors()  # never before the probe's read: those are conditional
    operators = [b for b in source.bindings if _static_operator(source, b)]
    if not operators:
        return static, source.conditional_parts(), []
    gated = [b for b in source.bindings if not source._is_static(b) and b not in operators]
    return static, (source.replace(bindings=gated) if gated else None), operators


def _static_operator(plan: Any, b: Any) -> bool:
    """A projection-operator binding that applies whatever the decision (see ``_is_static``)."""
    gains = {b.strengths.get(s, 0.0) for s in plan.strategies}
    return (
        b.op in ("ablate", "ablate_add", "clamp")
        and not b.custom
        and len(gains) == 1
        and gains != {0.0}
        and plan.positions == "all"
        and plan.constant_schedule
        and all(plan._writes_after_read(site) for site in b.sites)
    )


def _scaled(plan: Any, factor: float) -> Any:
    bindings = [
        dataclasses.replace(b, strengths={k: factor * v for k, v in b.strengths.items()})
        for b in plan.bindings
    ]
    return plan.replace(bindings=bindings)
