"""Weight edits that bake controls into a stock checkpoint: biases, embedding rows, orthogonalisation.

Nothing here touches the caller's model: edits build new tensors in a copy of its state dict
(unchanged tensors are shared, not copied), and :func:`bake` returns a model on the meta device
that holds them, ready for ``save_pretrained``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch

from ..core._sites import Site
from ..models._arch import hook_point
from ._ops import plan_writer_edits
from ._routes import (
    ROUTES,
    ExportError,
    Route,
    StateDict,
    check_target,
    export_route,
    fill_zero_biases,
    orthonormal,
    site_target,
    switch_config,
)

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["Baked", "bake", "bake_ops", "orthonormal", "residual_writers"]

# Which axis of a writer's weight is the residual width, by module class name (mro is searched).
_OUT_AXIS = {"Linear": 0, "Embedding": 1, "Conv1D": 1}


@dataclass
class Baked:
    """A baked checkpoint, not yet written: the meta-device model and what was done to it."""

    model: Any
    sites: list[dict[str, Any]] = field(default_factory=list)
    config_changes: dict[str, Any] = field(default_factory=dict)
    zero_biases: list[str] = field(default_factory=list)
    untied_lm_head: bool = False
    relabelled_from: str | None = None
    ablation: dict[str, Any] | None = None
    operators: list[dict[str, Any]] = field(default_factory=list)
    writers: list[dict[str, Any]] = field(default_factory=list)


# TransformerLens's bridge wraps each HF module it adopts and keeps the original under this name.
_WRAPPED = "_original_component"


def _module(model: OysterModel, path: str) -> torch.nn.Module:
    """The HF module at ``path``, unwrapped if TransformerLens has wrapped it."""
    module = model.hf.get_submodule(path)
    while hasattr(module, _WRAPPED):
        module = getattr(module, _WRAPPED)
    return module


def _source_state(model: OysterModel) -> StateDict:
    """The HF model's own state dict (tensors shared, not copied), also under TransformerLens."""
    sd = dict(model.hf.state_dict())
    if not any(_WRAPPED in key for key in sd):
        return sd
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):  # the bridge adds alias keys: keep the ones the family defines
        expected = AutoModelForCausalLM.from_config(model.hf.config).state_dict()
    plain = {key.replace(f".{_WRAPPED}", ""): value for key, value in sd.items()}
    return {key: value for key, value in plain.items() if key in expected}


def _out_axis(module: torch.nn.Module) -> int:
    for cls in type(module).__mro__:
        if cls.__name__ in _OUT_AXIS:
            return _OUT_AXIS[cls.__name__]
    raise ExportError(
        f"cannot orthogonalise a {type(module).__name__}: please report this architecture"
    )


def _project_out(weight: torch.Tensor, q: torch.Tensor, axis: int) -> torch.Tensor:
    """``weight`` with no component along span(q) on its residual axis; q is (d, k) orthonormal."""
    work = torch.promote_types(weight.dtype, torch.float32)
    w, q = weight.to(work), q.to(weight.device, work)
    if w.ndim == 1:  # a bias (d,)
        return (w - q @ (q.T @ w)).to(weight.dtype)
    if axis == 0:  # nn.Linear (d, in)
        return (w - q @ (q.T @ w)).to(weight.dtype)
    return (w - (w @ q) @ q.T).to(weight.dtype)  # (rows, d): embeddings, GPT-2 Conv1D


def residual_writers(model: OysterModel, route: Route) -> list[tuple[str, str | None]]:
    """Every module that writes to the residual stream, with the post norm after it (or None)."""
    spec = model.spec
    out: list[tuple[str, str | None]] = [
        (spec.embed, None),
        *((p, None) for p in route.extra_writers),
    ]
    norms = route.post_norms or (None, None)
    for layer in range(model.n_layers):
        block = f"{spec.layers}.{layer}"
        for proj, norm in ((spec.attn_proj, norms[0]), (spec.mlp_proj, norms[1])):
            out.append((f"{block}.{proj}", f"{block}.{norm}" if norm else None))
    return out


def _orthogonalise(
    model: OysterModel, route: Route, sd: StateDict, basis: torch.Tensor
) -> dict[str, Any]:
    """Remove span(basis) from every residual writer (weights and biases), in ``sd``."""
    for path, norm in residual_writers(model, route):
        q = basis
        if norm is not None:  # the norm rescales per channel: x must avoid (offset + w) * r instead
            gain = route.norm_offset + sd[f"{norm}.weight"].double()  # (d,)
            q = orthonormal((gain[:, None].to(basis.device) * basis).T)
        axis = _out_axis(_module(model, path))
        for name in ("weight", "bias"):
            key = f"{path}.{name}"
            if key in sd:
                sd[key] = _project_out(sd[key], q, axis)
    return {
        "route": "orthogonalise_through_post_norm" if route.post_norms else "orthogonalise",
        "rank": int(basis.shape[1]),
        "writers": len(residual_writers(model, route)),
        "exact": route.post_norms is None,
    }


def _add_to(sd: StateDict, key: str, vec: torch.Tensor, like: str) -> None:
    """``sd[key] += vec`` on a new tensor; a missing bias starts from zeros."""
    base = sd.get(key)
    ref = sd[like] if base is None else base
    work = torch.promote_types(ref.dtype, torch.float32)
    new = (0 if base is None else base.to(work)) + vec.to(ref.device, work)
    sd[key] = new.to(ref.dtype)


def _embed_scale(model: OysterModel, path: str) -> float:
    """What the embedding module multiplies its rows by (Gemma: sqrt(d)); 1 elsewhere."""
    module = _module(model, path)
    scale = getattr(module, "embed_scale", None)
    dtype = cast(torch.dtype, module.weight.dtype)
    return 1.0 if scale is None else float(torch.as_tensor(scale).to(dtype))


def _place(
    model: OysterModel, route: Route, sd: StateDict, site: Site, vec: torch.Tensor
) -> dict[str, Any]:
    """Write one site's vector into its writer's bias (or embedding rows); returns its record."""
    target, layer = site_target(site)
    spec = model.spec
    if target == "embed":
        path = route.embed or spec.embed
        _add_to(sd, f"{path}.weight", vec / _embed_scale(model, path), like=f"{path}.weight")
        return {"route": "embedding_rows", "module": path}
    proj = spec.mlp_proj if target == "mlp" else spec.attn_proj
    path = f"{spec.layers}.{layer}.{proj}"
    _add_to(sd, f"{path}.bias", vec, like=f"{path}.weight")
    return {"route": f"{target}_bias", "module": path}


def _untie(cfg: Any, sd: StateDict, model: OysterModel) -> bool:
    """Give the LM head its own copy of the unedited embedding when the two were tied."""
    if not getattr(cfg, "tie_word_embeddings", False):
        return False
    cfg.tie_word_embeddings = False
    sd[f"{model.spec.lm_head}.weight"] = sd[f"{model.spec.embed}.weight"]  # not yet edited
    return True


def _meta_model(cfg: Any, sd: StateDict, source: Any) -> tuple[Any, list[str]]:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        target = AutoModelForCausalLM.from_config(cfg)
    zeros = fill_zero_biases(sd, target.state_dict())
    target.load_state_dict(sd, strict=True, assign=True)
    target.generation_config = copy.deepcopy(source.generation_config)
    return target.eval(), zeros


def bake(
    model: OysterModel, additive: Mapping[Site, torch.Tensor], basis: torch.Tensor | None
) -> Baked:
    """Bake additive vectors (already scaled, ⊥ basis) and a removed subspace into a new model.

    Args:
        model: the source model (unchanged).
        additive: site -> (d,) vector added at every position.
        basis: (d, k) orthonormal directions to remove from the residual stream, or None.
    """
    route = export_route(model.model_type)
    targets = {site: site_target(site)[0] for site in additive}
    for site, target in targets.items():
        hook_point(model.spec, site, write=True, parallel=model.parallel_residual)  # site exists
        check_target(route, model.model_type, site, target)
    cfg, sd = copy.deepcopy(model.hf.config), _source_state(model)
    baked = Baked(model=None)
    if route.relabel is not None and {"mlp", "attn"} & set(targets.values()):
        cfg, sd = route.relabel(cfg, sd)
        baked.relabelled_from, route = model.model_type, ROUTES[cfg.model_type]
        baked.config_changes["model_type"] = cfg.model_type
    baked.config_changes.update(switch_config(cfg, route, set(targets.values())))
    embed_path = route.embed or model.spec.embed
    if basis is not None or ("embed" in targets.values() and embed_path == model.spec.embed):
        baked.untied_lm_head = _untie(cfg, sd, model)
        if baked.untied_lm_head:
            baked.config_changes["tie_word_embeddings"] = False
    if basis is not None:
        baked.ablation = _orthogonalise(model, route, sd, basis)
    for site, vec in additive.items():
        baked.sites.append({"site": site.name, **_place(model, route, sd, site, vec)})
    baked.model, baked.zero_biases = _meta_model(cfg, sd, model.hf)
    return baked


def _map_weight(weight: torch.Tensor, factors: list[torch.Tensor], axis: int) -> torch.Tensor:
    """``weight`` with each ``x -> x - U^T U x`` applied in order on its residual axis."""
    work = torch.promote_types(weight.dtype, torch.float64)
    w = weight.to(work)
    for f in factors:
        u = f.to(weight.device, work)  # (k, d)
        # a bias (d,) or nn.Linear (d, in); else (rows, d): embeddings, GPT-2 Conv1D
        w = w - u.T @ (u @ w) if w.ndim == 1 or axis == 0 else w - (w @ u.T) @ u
    return w.to(weight.dtype)


def bake_ops(model: OysterModel, ops: list[Any], basis: torch.Tensor | None) -> Baked:
    """Bake runtime operators (:mod:`oyster_steer.export._ops`) as exact edits of the residual writers.

    Args:
        model: the source model (unchanged).
        ops: the operators (:class:`~oyster_steer.export._ops.SiteOp`), in the order they apply.
        basis: (d, k) orthonormal directions removed from every write first (``ablate=``), or None.
    """

    route = export_route(model.model_type)
    edits = plan_writer_edits(model, route, ops, basis)
    spec = model.spec
    paths = {
        ("embed", 0): [spec.embed, *route.extra_writers],
        **{
            (kind, layer): [
                f"{spec.layers}.{layer}.{spec.attn_proj if kind == 'attn' else spec.mlp_proj}"
            ]
            for kind, layer in edits
            if kind != "embed"
        },
    }
    offsets = {
        w: e.extra for w, e in edits.items() if e.extra is not None and float(e.extra.norm()) > 1e-9
    }
    needs = {w[0] for w in offsets}
    for kind, layer in offsets:
        if kind != "embed":
            site = Site(layer, "attn_out" if kind == "attn" else "mlp_out")
            check_target(route, model.model_type, site, kind)
    cfg, sd = copy.deepcopy(model.hf.config), _source_state(model)
    baked = Baked(model=None)
    if route.relabel is not None and {"mlp", "attn"} & needs:
        cfg, sd = route.relabel(cfg, sd)
        baked.relabelled_from, route = model.model_type, ROUTES[cfg.model_type]
        baked.config_changes["model_type"] = cfg.model_type
    baked.config_changes.update(switch_config(cfg, route, needs))
    embed_path = route.embed or spec.embed
    if ("embed", 0) in edits:
        baked.untied_lm_head = _untie(cfg, sd, model)
        if baked.untied_lm_head:
            baked.config_changes["tie_word_embeddings"] = False
    for writer, edit in edits.items():
        for path in paths[writer]:
            axis = _out_axis(_module(model, path))
            for name in ("weight", "bias"):
                key = f"{path}.{name}"
                if key in sd:
                    sd[key] = _map_weight(sd[key], edit.factors, axis)
        if writer in offsets:
            vec = offsets[writer]
            if writer[0] == "embed":
                path = embed_path
                _add_to(
                    sd, f"{path}.weight", vec / _embed_scale(model, path), like=f"{path}.weight"
                )
            else:
                path = paths[writer][0]
                _add_to(sd, f"{path}.bias", vec, like=f"{path}.weight")
    baked.operators = [
        {
            "site": op.site.name,
            "op": op.kind,
            **({"value": float(op.targets[0])} if op.kind == "clamp" else {}),
            "norm_added": float(op.add.norm()),
        }
        for op in ops
    ]
    baked.ablation = (
        None
        if basis is None
        else {
            "route": "orthogonalise",
            "rank": int(basis.shape[1]),
            "writers": len(residual_writers(model, route)),
            "exact": True,
        }
    )
    baked.writers = [
        {
            "writer": "embedding" if kind == "embed" else f"block {layer} {kind}",
            "modules": paths[(kind, layer)],
            "directions_removed": sum(int(f.shape[0]) for f in edit.factors),
            "bias": (kind, layer) in offsets,
        }
        for (kind, layer), edit in edits.items()
    ]
    baked.model, baked.zero_biases = _meta_model(cfg, sd, model.hf)
    return baked
