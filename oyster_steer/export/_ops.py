"""Baking the static runtime operators (ablate, ablate_add, clamp) as exact writer edits.

Every operator is an affine map of what it touches (see :mod:`oyster_steer.control._operators`)::

    x  ->  x - U^T (U x) + U^T t + a          (U: unit directions, t: targets, a: added vector)

Where it touches decides whether a weight edit reproduces it exactly. The residual stream is a sum
of writes: the embedding, then each block's attention and MLP output. A hook on a *write*
(``hook_attn_out``, ``hook_resid_mid``, which writes through attention's output, ``hook_mlp_out``,
and ``blocks.0.hook_resid_pre``, the embedding itself) maps that write only, and a linear map of a
write is a weight edit of its projection: ``W <- M W``, ``b <- M b + e`` (embedding rows likewise).
A hook on the *stream* (``hook_resid_post``, ``hook_resid_pre`` of a later block) also maps what
earlier writers wrote, which the modules in between have already read; that is a weight edit only
when the stream's component along ``U`` is a constant there, i.e. every earlier writer has been
made blind to ``U`` by the operators before it. Then ``U x = U x_write + kappa`` and the map is
again an edit of the last writer: ``M W`` and the bias ``M e + U^T (t - kappa) + a``.

So ablating or clamping at every write (``blocks.0.hook_resid_pre`` and each block's attention and
MLP output, or each block's ``resid_pre`` and ``resid_mid``) bakes exactly, and so does an operator
at one write; an operator on the stream at a subset of layers does not, since the layers below
would need to see inputs they never saw: no weight edit of a stock checkpoint expresses
``x - (u . x) u`` of the whole stream at one point (the pre-norm blocks read the stream through a
norm and cannot output a linear function of it). Those are refused, as are families whose
sublayer outputs pass a norm before joining the residual (Gemma 2/3: the norm rescales).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..backends import Hook
from ..control._operators import Edit, Operator
from ..core._sites import Site, resolve_site
from ..models._arch import hook_point
from ..models._artifacts import check_model
from ._inputs import _check_width, _vector_meta
from ._routes import ExportError, Route

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["SiteOp", "WriterEdit", "collect_ops", "op_hooks", "plan_ops", "plan_writer_edits"]

Writer = tuple[str, int]  # ("embed", 0) | ("attn", L) | ("mlp", L)
_SERVE = "serve with oyster_steer.patch(model, vector, op=..., persistent=True)"


@dataclass
class SiteOp:
    """One operator at one site, in float64: ``x - U^T (U x) + U^T t + a``."""

    site: Site
    kind: str
    units: torch.Tensor  # (k, d), unit rows
    targets: torch.Tensor  # (k,)
    add: torch.Tensor  # (d,)

    def hook(self, device: torch.device, dtype: torch.dtype) -> Hook:
        """The runtime hook of this operator (the same tensor code as ``patch``'s)."""
        edit = Edit(
            add=self.add.to(device, dtype),
            unit=self.units.to(device, dtype),
            target=self.targets.to(device, dtype),
        )
        return Hook(self.site, lambda h: h + edit.delta(h), write=True)


@dataclass
class WriterEdit:
    """What one residual writer becomes: ``factors`` applied in order (``x - U^T U x``), plus ``extra``."""

    factors: list[torch.Tensor] = field(default_factory=list)
    extra: torch.Tensor | None = None

    def apply(self, units: torch.Tensor, offset: torch.Tensor) -> None:
        """Compose ``x -> x - U^T U x + offset`` after what the writer does now."""
        self.factors.append(units)
        if self.extra is not None:
            self.extra = self.extra - units.T @ (units @ self.extra)
        self.extra = offset if self.extra is None else self.extra + offset

    def seen_by(self, units: torch.Tensor) -> float:
        """Largest |U M| over the writer's linear map M: 0 when its writes have no U component."""
        if units.shape[0] == 0:
            return 0.0
        rows = units
        for f in reversed(self.factors):  # U M = U F_n ... F_1
            rows = rows - (rows @ f.T) @ f
        return float(rows.abs().max())


def collect_ops(
    model: OysterModel, source: Any, operator: Operator, strength: float | None
) -> list[SiteOp]:
    """One :class:`SiteOp` per (vector, site), in the order ``patch`` would apply them."""
    from collections.abc import Mapping, Sequence

    if isinstance(source, Mapping):
        parts = [(dict(source), 1.0 if strength is None else float(strength))]
    else:
        parts = []
        for vector in list(source) if isinstance(source, Sequence) else [source]:
            if not hasattr(vector, "directions"):
                raise TypeError(
                    f"cannot export op={operator.kind!r} with a {type(vector).__name__}: pass a SteeringVector, a list of them, or {{site: tensor}}"
                )
            check_model(_vector_meta(vector), model, what="steering vector")
            scale = strength if strength is not None else getattr(vector, "strength", 1.0)
            parts.append((dict(vector.directions), float(scale)))
    ops = []
    for directions, scale in parts:
        for name, tensor in directions.items():
            site = resolve_site(name, model.n_layers)
            hook_point(model.spec, site, write=True, parallel=model.parallel_residual)  # exists
            v = _check_width(model, name, tensor).double().cpu()
            if float(v.norm()) == 0.0:
                raise ExportError(
                    f"op={operator.kind!r} needs a non-zero direction at {name!r}: remove that site"
                )
            ops.append(
                SiteOp(
                    site=site,
                    kind=operator.kind,
                    units=(v / v.norm())[None],
                    targets=torch.tensor([operator.value], dtype=torch.float64),
                    add=scale * v if operator.adds else torch.zeros_like(v),
                )
            )
    return ops


def plan_ops(
    model: OysterModel, static: dict[str, torch.Tensor], bindings: list[Any], plan: Any
) -> list[SiteOp]:
    """A plan's unconditional part as one fused :class:`SiteOp` per site, as its hook applies it:
    every binding's projection edit computed from the same input, plus the summed vectors."""
    strategy = plan.strategies[0]  # unconditional: the same strength for every strategy
    sites: dict[Site, SiteOp] = {}

    def at(name: str) -> SiteOp:
        site = resolve_site(name, model.n_layers)
        if site not in sites:
            hook_point(model.spec, site, write=True, parallel=model.parallel_residual)
            zero = torch.zeros(model.d_model, dtype=torch.float64)
            empty = torch.zeros(0, model.d_model, dtype=torch.float64)
            sites[site] = SiteOp(site, "add", empty, zero[:0], zero)
        return sites[site]

    for name, vec in static.items():
        op = at(name)
        op.add = op.add + vec.double().cpu()
    for b in bindings:
        gain = b.strengths.get(strategy, 0.0)
        for name, (R, _, target) in b.lowrank.items():
            op = at(name)
            unit = R.double() / R.double().norm(dim=-1, keepdim=True)  # unit in float64 too
            op.units = torch.cat([op.units, unit])
            op.targets = torch.cat([op.targets, target.double()])
            op.kind = b.op if op.kind in ("add", b.op) else "mixed"
        for name, vec in b.directions.items():  # the added part of ablate_add
            op = at(name)
            op.add = op.add + gain * vec.double()
    return list(sites.values())


def _slot(site: Site, parallel: bool) -> tuple[list[Writer], str]:
    """The writer(s) a site's operator maps, and whether it maps their write or the stream."""
    layer = site.layer
    if site.kind == "resid_pre" and layer == 0:
        return [("embed", 0)], "write"  # the stream is the embedding there: nothing came before
    if site.kind in ("attn_out", "resid_mid"):  # a resid_mid write goes through attention's output
        return [("attn", layer)], "write"
    if site.kind == "mlp_out":
        return [("mlp", layer)], "write"
    block = layer if site.kind == "resid_post" else layer - 1  # resid_pre L: after block L-1
    return ([("attn", block)] if parallel else []) + [("mlp", block)], "stream"


def _rank(writer: Writer) -> int:
    """Position of a writer in the forward pass."""
    kind, layer = writer
    return -1 if kind == "embed" else 2 * layer + (kind == "mlp")


def _when(op: SiteOp, parallel: bool) -> tuple[int, bool, tuple[int, int]]:
    """Sort key in forward order: by writer, its write hooks before stream hooks, then the stream
    hooks by site (``resid_post L`` fires before ``resid_pre L+1``). Write hooks on one module keep
    their given order (the order they were registered), as the sort is stable."""
    targets, how = _slot(op.site, parallel)
    return _rank(targets[-1]), how == "stream", op.site.order if how == "stream" else (0, 0)


def plan_writer_edits(
    model: OysterModel, route: Route, ops: list[SiteOp], basis: torch.Tensor | None
) -> dict[Writer, WriterEdit]:
    """Each writer's edit that reproduces ``ops`` (after removing ``basis`` from every write).

    Raises:
        ExportError: an operator on the stream where earlier writers still write along its
            direction, or a family whose sublayer outputs are normalised before the residual.
    """
    if route.post_norms is not None:
        raise ExportError(
            f"op={ops[0].kind!r} cannot be baked into {model.model_type}: its attention and MLP outputs pass "
            f"a norm ({' / '.join(route.post_norms)}) before joining the residual stream, which rescales them, "
            f"so no weight edit reproduces a projection exactly; {_SERVE}, or export with ablate= "
            "(a removal through the norms, not numerically the hooks)"
        )
    writers: list[Writer] = [("embed", 0)] + [
        (kind, layer) for layer in range(model.n_layers) for kind in ("attn", "mlp")
    ]
    edits = {w: WriterEdit() for w in writers}
    if basis is not None:  # ablate=: every write loses span(basis) first
        for w in writers:
            edits[w].apply(basis.T.double().cpu(), torch.zeros(model.d_model, dtype=torch.float64))
    for op in sorted(ops, key=lambda op: _when(op, model.parallel_residual)):
        targets, how = _slot(op.site, model.parallel_residual)
        offset = op.units.T @ op.targets + op.add
        if how == "stream":
            first = min(_rank(t) for t in targets)
            before = [w for w in writers if _rank(w) < first]
            dirty = [w for w in before if edits[w].seen_by(op.units) > 1e-6]
            if dirty:
                kind, layer = dirty[0]
                raise ExportError(
                    f"op={op.kind!r} at {op.site.name!r} edits the whole residual stream, whose component along "
                    f"its direction there still comes from earlier writers (first: {'the embedding' if kind == 'embed' else f'block {layer} {kind}'}) "
                    "that the layers in between read, so no weight edit reproduces it exactly: apply it at "
                    "every write (blocks.0.hook_resid_pre and each block's hook_attn_out and hook_mlp_out, "
                    f"or each block's hook_resid_pre and hook_resid_mid), or {_SERVE}"
                )
            stream = torch.zeros(model.d_model, dtype=torch.float64)  # its constant part
            for w in before:
                extra = edits[w].extra
                if extra is not None:
                    stream = stream + extra
            kappa = op.units @ stream
            offset = offset - op.units.T @ kappa
        for j, target in enumerate(targets):  # parallel blocks: both writes, the offset once
            last = j == len(targets) - 1
            edits[target].apply(op.units, offset if last else torch.zeros_like(offset))
    return {w: e for w, e in edits.items() if e.factors}


def op_hooks(model: OysterModel, ops: list[SiteOp]) -> list[Hook]:
    """The operators as runtime hooks, in the order they apply (what the export must reproduce)."""
    ordered = sorted(ops, key=lambda op: _when(op, model.parallel_residual))
    return [op.hook(model.device, model.dtype) for op in ordered]
