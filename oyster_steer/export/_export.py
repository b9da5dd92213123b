"""Bake steering into a plain Hugging Face checkpoint that serves without oyster_steer.

``export_patched`` turns unconditional additive vectors into biases (and embedding rows) and
removed directions into orthogonalised weights, and the static runtime operators (``op="ablate"``,
``"ablate_add"``, ``"clamp"``) into exact edits of the residual writers they map, or refuses them
where no weight edit is exact (:mod:`oyster_steer.export._ops`), using only parameters and config switches the
architecture already has (see :mod:`oyster_steer.export._routes` for the per-family table). The
output is a ``save_pretrained`` directory that ``AutoModelForCausalLM.from_pretrained`` loads
with no custom code, plus ``oyster_steer_manifest.json`` recording what was baked and how.
Probe-gated (conditional) controls cannot be baked; they are refused, or written beside the
checkpoint as ``control.safetensors`` to re-apply with :func:`oyster_steer.patch` after loading.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..backends import Hook, get_backend, position_ids
from ..control import save_plan
from ..control._operators import CustomFn, Operator, as_operator
from ..control._pack import retarget_plan
from ..core._errors import EmptyInputError, require_finite
from ..core._sites import Site, resolve_site
from ..core._version import __version__
from ..models._artifacts import content_id
from ..models._compat import write_legacy_fields
from ..models._model import model_fingerprint, weights_digest
from ._bake import Baked, bake, bake_ops
from ._inputs import ablation_basis, collect_additive, split_plan
from ._ops import SiteOp, collect_ops, op_hooks, plan_ops
from ._routes import ExportError, export_route

if TYPE_CHECKING:
    from ..control._plan import ControlPlan
    from ..models._model import OysterModel
    from ..vectors._vector import SteeringVector

    #: what export_patched bakes (None: ablation only) and what it orthogonalises out
    Exportable = (
        ControlPlan | SteeringVector | Sequence[SteeringVector] | Mapping[str, torch.Tensor] | None
    )
    Ablation = SteeringVector | Mapping[str, torch.Tensor] | torch.Tensor | None

__all__ = ["MANIFEST_NAME", "ExportError", "ExportManifest", "export_patched", "reference_hooks"]

MANIFEST_NAME = "oyster_steer_manifest.json"
CONTROL_NAME = "control.safetensors"
_FORMAT = "oyster_steer.export"
_VERIFY_PROMPTS = ("Hello! Can you help me plan a birthday party?", "What is 17 times 23?")
# Largest logit difference accepted by the export's self-check, relative to the largest logit.
_VERIFY_RTOL = {torch.float32: 1e-4, torch.float64: 1e-9}


@dataclass(frozen=True)
class ExportManifest:
    """What ``export_patched`` wrote: routes per site, ablation, config changes, self-check.

    Attributes:
        out_dir: the checkpoint directory; model_*: identity of the source model.
        model_type: the exported family (differs from ``source_model_type`` when relabelled).
        baked: one record per baked site (site, route, module, norm, and the strengths and
            sources of the vectors summed into it).
        ablated: how directions were removed (route, rank, writers, exact), or None.
        operators: one record per (vector, site) of a baked runtime operator (``op``, ``value``);
            ``writers``: the residual writers whose weights (and bias) reproduce them.
        config_changes: config fields the export switched; control_pack: file of conditional parts.
        verification: max logit difference between the reloaded export and the hooked source.
        baked_artifacts: content ids of the vectors baked in; a model loaded from this directory
            refuses to apply them again (that would double them).
    """

    out_dir: str
    model_name: str
    model_fingerprint: str
    source_model_type: str
    model_type: str
    baked: list[dict[str, Any]] = field(default_factory=list)
    ablated: dict[str, Any] | None = None
    operators: list[dict[str, Any]] = field(default_factory=list)
    writers: list[dict[str, Any]] = field(default_factory=list)
    config_changes: dict[str, Any] = field(default_factory=dict)
    zero_biases: int = 0
    untied_lm_head: bool = False
    control_pack: str | None = None
    verification: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    baked_artifacts: list[str] = field(default_factory=list)
    oyster_steer_version: str = ""
    transformers_version: str = ""
    format: str = _FORMAT
    format_version: int = 1

    def save(self, directory: str | Path | None = None) -> Path:
        """Write the manifest into ``directory`` (default: ``out_dir``)."""
        path = Path(directory or self.out_dir) / MANIFEST_NAME
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, out_dir: str | Path) -> ExportManifest:
        """Read ``oyster_steer_manifest.json`` from an export directory."""
        data = json.loads((Path(out_dir) / MANIFEST_NAME).read_text())
        if data.get("format") != _FORMAT:
            raise ExportError(
                f"{out_dir} holds no oyster_steer export manifest: pass an export_patched output directory"
            )
        return cls(**data)


def reference_hooks(
    model: OysterModel, additive: Mapping[Site, torch.Tensor], basis: torch.Tensor | None
) -> list[Any]:
    """The hooks whose effect an export bakes in (what the exported checkpoint must reproduce).

    Each vector is added at its site at every position; with a basis, span(basis) is projected
    out of every write to the residual stream (embeddings and each attention and MLP output),
    which keeps the residual free of it at every layer.
    """

    hooks = [
        Hook(site, _adder(vec.to(model.device, model.dtype)), write=True)
        for site, vec in additive.items()
    ]
    if basis is not None:
        q = basis.to(model.device, model.dtype)  # (d, k)
        writes = [Site(0, "resid_pre")] + [
            Site(i, k) for i in range(model.n_layers) for k in ("attn_out", "mlp_out")
        ]
        hooks += [Hook(site, _projector(q), write=True) for site in writes]
    return hooks


def _adder(vec: torch.Tensor) -> Any:
    return lambda h: h + vec  # (B, T, d)


def _projector(q: torch.Tensor) -> Any:
    return lambda h: h - (h @ q) @ q.T  # (B, T, d)


def _verify(
    model: OysterModel,
    out_dir: Path,
    additive: Mapping[Site, torch.Tensor],
    basis: torch.Tensor | None,
    ops: list[SiteOp] | None = None,
) -> dict[str, Any]:
    """Reload the export from disk and compare its logits with the hooked source model."""
    from transformers import AutoModelForCausalLM

    ids, mask = model.encode(list(_VERIFY_PROMPTS))
    hooks = reference_hooks(model, additive, basis) + op_hooks(model, ops or [])
    with torch.no_grad():
        ref = get_backend("hf").forward(model.with_backend("hf"), ids, mask, hooks)
        # transformers types PreTrainedModel.to(...) as a wrapper that mypy misreads; it is Module.to
        loaded: Any = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=model.dtype)
        exported = loaded.to(model.device).eval()
        got = exported(
            input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False
        ).logits
    assert ref is not None, "forward(..., logits=True) returns the logits"
    real = mask.bool()  # padded positions are not compared
    diff = float((got.float() - ref.float())[real].abs().max())
    scale = float(ref.float()[real].abs().max())
    tol = _VERIFY_RTOL.get(model.dtype, 3e-2) * max(scale, 1.0)
    if not diff <= tol:
        raise ExportError(
            f"the exported checkpoint in {str(out_dir)!r} differs from the hooked model by {diff:.3g} in logits "
            f"(tolerance {tol:.3g}): please report this with the model's config; nothing was written"
        )
    return {
        "max_abs_logit_diff": diff,
        "max_abs_logit": scale,
        "tokens": int(real.sum()),
        "dtype": str(model.dtype),
    }


def _refuse_conditional(conditional: Any = None) -> None:
    lowrank = [b.name for b in getattr(conditional, "bindings", ()) if getattr(b, "lowrank", None)]
    stepwise = conditional is not None and not conditional.constant_schedule
    what = (
        f"input-dependent low-rank bindings {lowrank} (never a bias, gated or not)"
        if lowrank
        else "parts under a decode-step schedule that is not a constant 1 (a bias cannot change "
        "with the decode step, gated or not)"
        if stepwise
        else "probe-gated (conditional) parts"
    )
    raise ExportError(
        f"the control plan has {what}, which a stock checkpoint cannot express: "
        "pass allow_conditional=True to bake the unconditional part and write the rest to "
        f"{CONTROL_NAME} beside the checkpoint (re-apply it with oyster_steer.patch after loading), "
        "or serve the plan in memory with oyster_steer.patch(model, plan)"
    )


def _prepare_out(out_dir: str | Path) -> Path:
    """``out_dir`` checked to be new or empty, with its parent created (nothing written yet)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(
            f"out_dir {str(out)!r} is a file: an export is a directory; choose a new directory"
        )
    if out.exists() and any(out.iterdir()):
        raise ExportError(
            f"out_dir {str(out)!r} is not empty: choose a new directory or delete its contents"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _notes(model: OysterModel, baked: Baked) -> list[str]:
    notes = [export_route(model.model_type).note] if export_route(model.model_type).note else []
    if baked.relabelled_from:
        notes.append(
            f"{baked.relabelled_from} was relabelled as llama (same blocks; llama has the bias switches)"
        )
    if any(r["route"] == "embedding_rows" for r in baked.sites):
        notes.append(
            "blocks.0.hook_resid_pre was added to every embedding row: each token's embedding shifts by the vector"
        )
    if baked.untied_lm_head:
        notes.append(
            "the LM head was untied from the edited embedding and keeps the original weights "
            "(engines that require tied embeddings for this family, like vLLM's Gemma, cannot load it)"
        )
    if baked.ablation and not baked.ablation["exact"]:
        notes.append(
            "directions were removed through the post-sublayer norms: the residual stream carries none of them, "
            "but the result is not numerically the projection hooks (the norms rescale)"
        )
    return notes


def export_patched(
    model: OysterModel,
    plan_or_vectors: Exportable,
    out_dir: str | Path,
    *,
    strength: float | None = None,
    ablate: Ablation = None,
    op: str | Operator | CustomFn = "add",
    value: float | None = None,
    allow_conditional: bool = False,
    verify: bool = True,
) -> ExportManifest:
    """Write a plain Hugging Face checkpoint with the controls baked into its weights.

    Args:
        model: the source model (not modified).
        plan_or_vectors: a SteeringVector, a list of them, ``{site: (d,) tensor}`` (added as given
            times ``strength``), a ControlPlan, or None (ablation only). Vectors are added at every
            position: as a bias on the projection that writes the residual at their site.
        out_dir: a new or empty directory.
        strength: overrides each vector's own strength; multiplies a ``{site: tensor}`` mapping,
            and every binding of a plan (baked and packed alike, as ``patch`` does).
        ablate: directions to remove from the residual stream (a SteeringVector, ``{site: (d,)}``,
            or a (d,) / (k, d) tensor): every residual-writing matrix is orthogonalised.
        op: the runtime operator the vectors are applied with, as in :func:`oyster_steer.patch`:
            ``"add"`` (default), ``"ablate"``, ``"ablate_add"`` or ``"clamp"`` (with ``value``).
            A projection operator is baked into the weights of the residual writers it maps, and
            only where that is exact: at a write (``blocks.0.hook_resid_pre``, ``hook_attn_out``,
            ``hook_resid_mid``, ``hook_mlp_out``) always; on the stream (``hook_resid_post``,
            ``hook_resid_pre`` of a later block) only where every earlier write already lacks the
            direction (so: at every layer). Anything else, custom callables included, raises
            :class:`ExportError` (see :mod:`oyster_steer.export._ops`).
        value: the projection ``op="clamp"`` sets.
        allow_conditional: bake a plan's unconditional part and write its probe-gated part to
            ``control.safetensors`` (re-apply with ``patch`` after loading) instead of refusing.
        verify: reload the export and compare its logits with the hooked source model.

    Returns:
        The manifest, also written as ``oyster_steer_manifest.json`` in ``out_dir``.

    Example:
        >>> manifest = export_patched(model, vector, "exported/constructive")   # doctest: +SKIP
        >>> AutoModelForCausalLM.from_pretrained("exported/constructive")       # doctest: +SKIP
    """
    if strength is not None:
        require_finite(strength, f"strength={strength}")
    operator = as_operator(op, value)
    if operator.kind != "add":
        ops = _vector_ops(model, plan_or_vectors, operator, strength)
        return _export_ops(model, ops, plan_or_vectors, out_dir, ablate, verify)
    static, conditional, operators = split_plan(model, plan_or_vectors, strength)
    if conditional is not None and not allow_conditional:
        _refuse_conditional(conditional)
    if operators:  # ablate / clamp bindings that apply whatever the decision
        ops = plan_ops(model, static, operators, plan_or_vectors)
        _check_pack_sites(conditional, ops)
        return _export_ops(
            model, ops, plan_or_vectors, out_dir, ablate, verify, conditional, operators
        )
    plan_given = hasattr(plan_or_vectors, "conditional_parts")
    additive, records = collect_additive(model, static, None if plan_given else strength)
    basis, ablate_sites = ablation_basis(model, ablate)
    if not additive and basis is None and conditional is None:
        raise EmptyInputError(
            "nothing to export: pass steering vectors, a control plan, or ablate="
        )
    for site, vec in additive.items():
        require_finite(vec, f"the vector to bake at {site.name!r}")
    if basis is not None:  # the removed directions stay removed, also from the added vectors
        additive = {
            site: vec - basis.to(vec) @ (basis.to(vec).T @ vec) for site, vec in additive.items()
        }
    baked = bake(model, additive, basis)
    out = _prepare_out(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:  # everything is written and verified in a hidden sibling, then renamed into place
        baked.model.save_pretrained(tmp)
        model.tokenizer.save_pretrained(tmp)
        write_legacy_fields(tmp)  # rope_theta, tokenizer class: what transformers 4.x reads
        manifest = _manifest(model, baked, out, records, additive, ablate_sites)
        manifest = replace(manifest, baked_artifacts=_baked_ids(model, plan_or_vectors))
        if conditional is not None:
            manifest = replace(
                manifest, control_pack=_write_control(model, conditional, tmp, baked)
            )
        if verify and (basis is None or bool(baked.ablation and baked.ablation["exact"])):
            manifest = replace(manifest, verification=_verify(model, tmp, additive, basis))
        manifest.save(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an export is meant to be shared
        if out.exists():  # empty (checked above): the rename replaces it
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():  # failed or interrupted: never leave a loadable, unverified checkpoint
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _vector_ops(
    model: OysterModel, source: Any, operator: Operator, strength: float | None
) -> list[SiteOp]:
    """The operators of ``export_patched(..., op=...)``: vectors only, never python code."""
    if operator.kind == "custom":
        raise ExportError(
            "op is a python callable, whose edit no weight change can express: serve it with "
            "oyster_steer.patch(model, vector, op=fn, persistent=True)"
        )
    if source is None or hasattr(source, "conditional_parts"):
        raise ValueError(
            f"op={operator.kind!r} applies to steering vectors; a ControlPlan takes its operators "
            "from its bindings (bind(vector, strengths, op=...)): pass vectors, or the plan without op="
        )
    ops = collect_ops(model, source, operator, strength)
    if not ops:
        raise EmptyInputError("nothing to export: the vectors have no sites")
    return ops


def _check_pack_sites(conditional: Any, ops: list[SiteOp]) -> None:
    """A packed (gated) projection at a site where an operator is baked would run after it, not
    fused with it as in the plan's hook: refuse rather than pack a different plan."""
    if conditional is None:
        return
    baked = {op.site.name for op in ops if op.units.shape[0]}
    clash = sorted(baked & {site for b in conditional.bindings for site in b.lowrank})
    if clash:
        raise ExportError(
            f"the plan has unconditional and probe-gated projections (ablate/clamp/low-rank) at {clash}: the "
            "hook applies them together, which a baked edit followed by a packed hook cannot reproduce; "
            "move one of them to another site, or serve the plan with oyster_steer.patch(model, plan)"
        )


def _export_ops(
    model: OysterModel,
    ops: list[SiteOp],
    source: Any,
    out_dir: str | Path,
    ablate: Any,
    verify: bool,
    conditional: Any = None,
    operators: Sequence[Any] = (),
) -> ExportManifest:
    """``export_patched`` with projection operators: exact writer edits, or a refusal."""
    basis, ablate_sites = ablation_basis(model, ablate)
    baked = bake_ops(model, ops, basis)
    out = _prepare_out(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:  # as export_patched: written and verified in a hidden sibling, then renamed into place
        baked.model.save_pretrained(tmp)
        model.tokenizer.save_pretrained(tmp)
        write_legacy_fields(tmp)
        manifest = _manifest(model, baked, out, [], {}, ablate_sites)
        ids = _baked_ids(model, source) + [
            content_id(b.directions) for b in operators if b.directions
        ]
        manifest = replace(
            manifest,
            operators=baked.operators,
            writers=baked.writers,
            baked_artifacts=sorted(set(ids)),
        )
        if conditional is not None:
            manifest = replace(
                manifest, control_pack=_write_control(model, conditional, tmp, baked)
            )
        if verify:
            manifest = replace(manifest, verification=_verify(model, tmp, {}, basis, ops))
        manifest.save(tmp)
        os.chmod(tmp, 0o755)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _manifest(
    model: OysterModel,
    baked: Baked,
    out: Path,
    records: list[dict[str, Any]],
    additive: Mapping[Site, torch.Tensor],
    ablate_sites: list[str],
) -> ExportManifest:
    import transformers

    return ExportManifest(
        out_dir=str(out),
        model_name=model.name,
        model_fingerprint=model.fingerprint,
        source_model_type=model.model_type,
        model_type=baked.model.config.model_type,
        baked=_merge_records(baked.sites, records, additive),
        ablated=None if baked.ablation is None else {**baked.ablation, "sites": ablate_sites},
        config_changes=baked.config_changes,
        zero_biases=len(baked.zero_biases),
        untied_lm_head=baked.untied_lm_head,
        notes=_notes(model, baked),
        oyster_steer_version=__version__,
        transformers_version=transformers.__version__,
    )


def _merge_records(
    placed: list[dict[str, Any]], given: list[dict[str, Any]], additive: Mapping[Site, torch.Tensor]
) -> list[dict[str, Any]]:
    """One record per baked site: where it went, plus the strengths and sources that summed into it."""
    norms = {site.name: float(vec.norm()) for site, vec in additive.items()}
    out = []
    for rec in placed:
        parts = [g for g in given if g["site"] == rec["site"]]
        out.append(
            {
                **rec,
                "norm": norms[rec["site"]],
                "strengths": [p["strength"] for p in parts],
                "sources": [p["source"] for p in parts],
            }
        )
    return out


def _write_control(model: OysterModel, conditional: Any, out: Path, baked: Baked) -> str:
    """Save the conditional part beside the checkpoint, retargeted to the exported model's identity.

    The export may change the model's fingerprint (a relabel changes ``model_type``, embedding
    edits change its rows), and ``load_plan(path, exported_model)`` checks it.
    """

    identity = {
        "model_name": f"{model.name} (exported)",
        "model_fingerprint": model_fingerprint(baked.model),
        "model_weights": weights_digest(baked.model),
        "d_model": str(model.d_model),
        "n_layers": str(model.n_layers),
    }
    save_plan(retarget_plan(conditional, identity), out / CONTROL_NAME)
    _index_single_shard(out)
    return CONTROL_NAME


def _index_single_shard(out: Path) -> None:
    """Write ``model.safetensors.index.json`` for an unsharded checkpoint.

    Engines that glob ``*.safetensors`` for weights (vLLM's default loader) would otherwise
    read ``control.safetensors`` as a weight file and fail on its tensor names; with an index
    they load only the files it lists. transformers prefers ``model.safetensors`` when present.
    """
    from safetensors import safe_open

    single, index = out / "model.safetensors", out / "model.safetensors.index.json"
    if not single.is_file() or index.exists():
        return
    with safe_open(str(single), "pt") as fh:
        names = list(fh.keys())
    weight_map = {name: single.name for name in sorted(names)}
    index.write_text(
        json.dumps(
            {"metadata": {"total_size": single.stat().st_size}, "weight_map": weight_map}, indent=2
        )
        + "\n"
    )


def _baked_ids(model: OysterModel, source: Any) -> list[str]:
    """Content ids of the unconditional vectors in ``source`` (what a reload must not re-apply)."""

    if source is None:
        return []
    if hasattr(source, "conditional_parts"):  # a plan: its unconditional bindings
        static = getattr(source, "_is_static", lambda b: False)
        return sorted({content_id(b.directions) for b in source.bindings if static(b)})
    if isinstance(source, Mapping):
        canonical = {resolve_site(k, model.n_layers).name: v for k, v in source.items()}
        return [content_id(canonical)]
    parts = source if isinstance(source, (list, tuple)) else [source]
    return sorted({content_id(v.directions) for v in parts if hasattr(v, "directions")})
