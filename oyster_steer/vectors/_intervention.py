"""Low-rank, input-dependent interventions (ReFT-style), learned jointly at several sites.

At each of its sites an :class:`LowRankIntervention` rewrites the residual stream as

    h  ->  h + g * R^T (W h + b - R h)

with ``R``, ``W`` of shape (r, d), ``b`` of shape (r,), rank ``r`` (1-8 is typical) and ``g`` the
gate of the row (1 when applied alone; a control plan sets it per row from its policy, see
:func:`oyster_steer.bind`). Unlike a steering vector the edit depends on ``h``: it can write
different things for different prompts and tokens, which is what lets a small model be moved
from on-topic compliance to a boundary plus an alternative that still speaks to the prompt.

:func:`train_intervention` learns one jointly at several sites by teacher forcing: the
cross-entropy of target replies after their prompts, with the intervention applied at every
position of every site (what a plan does at sites after its read site). Only the intervention's
parameters are trained; the model stays frozen.

Because the edit is a function of the activation, it cannot be baked into a checkpoint as a bias:
:func:`oyster_steer.export_patched` refuses it and points to ``patch`` (or ``--allow-conditional``).

Example:
    >>> iv = train_intervention(model, prompts, targets, sites=[12, 16, 20, 24], rank=4)  # doctest: +SKIP
    >>> plan = ControlPlan(probe, [bind(iv, {"redirect": 1.0}, name="redirect")])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import torch

from ..activations._scoring import (
    FrozenInputs,
    Group,
    Packed,
    chat_ids,
    frozen_inputs,
    pack,
    reply_logprobs,
    reply_means,
)
from ..backends import Hook, get_backend
from ..core._errors import (
    ArtifactError,
    EmptyInputError,
    SiteError,
    WidthMismatchError,
    require_finite,
)
from ..core._sites import Site, parse_site, resolve_site
from ..models._artifacts import check_model, load_artifact, model_meta, save_artifact
from ..models._forward import supports_forward_from
from ._learn import _Frozen

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = [
    "InterventionConfig",
    "LowRankIntervention",
    "check_lowrank",
    "load_intervention",
    "lowrank_delta",
    "save_intervention",
    "train_intervention",
]

_FORMAT, _VERSION = "oyster_steer.intervention", 1
_PARTS = ("R", "W", "b")


def lowrank_delta(
    h: torch.Tensor, R: torch.Tensor, W: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """``R^T (W h + b - R h)`` for activations ``h`` (..., d): the edit, same shape as ``h``."""
    return (h @ (W - R).T + b) @ R


def check_lowrank(
    part: Sequence[torch.Tensor], owner: str, site: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``part`` (R, W, b) as float32 tensors, refused unless finite with R, W (r, d) and b (r,).

    Args:
        part: R, W and b, anything ``torch.as_tensor`` takes.
        owner: whose they are, for error messages ("the intervention's", "binding 'x''s low-rank").
        site: their site, for error messages.
    """
    R, W, b = (torch.as_tensor(t).detach().float() for t in part)
    for key, t in zip("RWb", (R, W, b), strict=True):
        require_finite(t, f"{owner} {key} at {site!r}")
    if R.dim() != 2 or W.shape != R.shape or b.shape != (R.shape[0],):
        raise WidthMismatchError(
            f"{owner} R {tuple(R.shape)}, W {tuple(W.shape)} and b {tuple(b.shape)} at {site!r} do "
            "not fit: pass R and W of shape (rank, d) and b of shape (rank,)"
        )
    return R, W, b


@dataclass(frozen=True, eq=False)
class LowRankIntervention:
    """A learned low-rank edit per site: ``{site: (R (r, d), W (r, d), b (r,))}``.

    Attributes:
        parts: canonical site name -> (R, W, b) float32 tensors.
        identity: model_name / model_fingerprint / d_model / n_layers of its model.
        meta: provenance strings (training data, steps, loss, ...).
    """

    parts: Mapping[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    identity: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.parts:
            raise EmptyInputError(
                "a LowRankIntervention needs at least one site: pass {site: (R, W, b)}"
            )
        checked: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        widths = set()
        for site, part in sorted(self.parts.items(), key=lambda kv: parse_site(kv[0]).order):
            R, W, b = check_lowrank(part, "the intervention's", site)
            widths.add(R.shape[1])
            checked[parse_site(site).name] = (R, W, b)
        if len(widths) != 1:
            raise WidthMismatchError(
                f"the intervention's sites have widths {sorted(widths)}: use one model's width"
            )
        object.__setattr__(self, "parts", MappingProxyType(checked))
        object.__setattr__(self, "identity", {str(k): str(v) for k, v in self.identity.items()})
        object.__setattr__(self, "meta", {str(k): str(v) for k, v in self.meta.items()})

    @property
    def d_model(self) -> int:
        return next(iter(self.parts.values()))[0].shape[1]

    @property
    def rank(self) -> int:
        return max(p[0].shape[0] for p in self.parts.values())

    @property
    def sites(self) -> list[str]:
        return list(self.parts)


def save_intervention(intervention: LowRankIntervention, path: str | Path) -> Path:
    """Write ``intervention`` as one safetensors file (tensors ``{site}/{R,W,b}``)."""
    tensors = {
        f"{site}/{name}": t.contiguous().clone()
        for site, part in intervention.parts.items()
        for name, t in zip(_PARTS, part, strict=True)
    }
    meta = {**intervention.identity, "meta": json.dumps(dict(intervention.meta))}
    return save_artifact(path, tensors, meta, format=_FORMAT, version=_VERSION)


def load_intervention(path: str | Path, model: OysterModel | None = None) -> LowRankIntervention:
    """Read an intervention; with ``model``, refuse one made for another model."""
    tensors, meta = load_artifact(path, format=_FORMAT, max_version=_VERSION)
    if model is not None:
        check_model(meta, model, what="intervention")
    sites = sorted({k.rsplit("/", 1)[0] for k in tensors})
    try:
        parts = {s: tuple(tensors[f"{s}/{n}"] for n in _PARTS) for s in sites}
        extra = json.loads(meta.get("meta", "{}"))
    except (KeyError, json.JSONDecodeError) as err:
        raise ArtifactError(
            f"{str(path)!r} is not a complete intervention ({err}): rebuild it with save_intervention"
        ) from err
    identity = {
        k: meta[k] for k in ("model_name", "model_fingerprint", "d_model", "n_layers") if k in meta
    }
    return LowRankIntervention(parts, identity, extra)  # type: ignore[arg-type]


@dataclass(frozen=True)
class InterventionConfig:
    """Training settings; defaults fit SmolLM2-135M on two CPU cores (a few minutes)."""

    rank: int = 4
    steps: int = 150
    batch_size: int = 8
    lr: float = 3e-3
    max_reply_tokens: int = 72  # a target (plus its end-of-turn token) must fit in this many
    seed: int = 0
    retain_weight: float = 1.0  # weight of the retain KL (when retain prompts are given)
    retain_batch_size: int = 4
    eval_every: int = 0  # with held-out pairs: score them every this many steps, keep the best


class _Module(torch.nn.Module):
    def __init__(self, d: int, rank: int, names: Sequence[str], seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        basis = [torch.linalg.qr(torch.randn(d, rank, generator=g))[0].T for _ in names]
        # W = R, b = 0: the edit starts at exactly zero and every part gets a gradient
        self.R = torch.nn.ParameterList([torch.nn.Parameter(r.clone()) for r in basis])
        self.W = torch.nn.ParameterList([torch.nn.Parameter(r.clone()) for r in basis])
        self.b = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(rank)) for _ in names])

    def hook(self, i: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def write(h: torch.Tensor) -> torch.Tensor:
            return h + lowrank_delta(h.float(), self.R[i], self.W[i], self.b[i]).to(h.dtype)

        return write


def train_intervention(
    model: OysterModel,
    prompts: Sequence[str],
    targets: Sequence[str],
    *,
    sites: Sequence[str | int | Site],
    config: InterventionConfig | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    meta: Mapping[str, str] | None = None,
    retain: tuple[Sequence[str], Sequence[str]] | None = None,
    held_out: tuple[Sequence[str], Sequence[str]] | None = None,
) -> LowRankIntervention:
    """Learn a low-rank intervention at ``sites`` that makes the model say ``targets``.

    Args:
        model: any backend (trained through its Hugging Face module; weights stay frozen).
        prompts, targets: user messages and the replies wanted after them (same length); use
            many different targets that speak to their prompts, or the model learns one canned
            reply for every prompt.
        sites: hook sites (an int ``L`` means ``blocks.L.hook_resid_post``); for a plan, sites at
            or after its probe's read site.
        config: :class:`InterventionConfig`.
        retain: (prompts, replies) the intervention should leave alone, e.g. benign prompts with
            the unsteered model's own replies: the loss adds ``config.retain_weight`` times the
            mean per-token KL(unsteered || steered) at their reply tokens, so that a prompt
            routed to this intervention by mistake gets nearly the reply it would have got.
        held_out: (prompts, targets) scored every ``config.eval_every`` steps; the parameters
            with the lowest held-out loss are returned (early stopping against memorising).

    Raises:
        EmptyInputError: no prompts. ValueError: lengths differ, or a target longer than
            ``config.max_reply_tokens``.
    """

    cfg = config or InterventionConfig()
    if not prompts:
        raise EmptyInputError(
            "train_intervention got no training prompts: pass the prompts of the population the "
            "intervention is for (e.g. the malicious training prompts for 'redirect')"
        )
    if len(prompts) != len(targets):
        raise ValueError(
            f"got {len(prompts)} prompts and {len(targets)} targets: pass one target per prompt"
        )
    if cfg.rank < 1 or cfg.steps < 1 or cfg.batch_size < 1:
        raise ValueError(f"config {cfg} needs rank, steps and batch_size >= 1")
    resolved = _sites(sites, model.n_layers)
    groups = _groups(model, prompts, targets, cfg.max_reply_tokens)
    retain_groups = _groups(model, *retain, cfg.max_reply_tokens) if retain else []
    held_groups = _groups(model, *held_out, cfg.max_reply_tokens) if held_out else []
    hf = model.with_backend("hf")
    torch.manual_seed(cfg.seed)
    module = _Module(model.d_model, cfg.rank, [s.name for s in resolved], cfg.seed).to(model.device)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    rng = random.Random(cfg.seed)
    order = list(range(len(groups)))
    per_epoch = max(1, len(order) // cfg.batch_size)
    started, history = time.monotonic(), []
    hooks = [Hook(s, module.hook(i), write=True) for i, s in enumerate(resolved)]
    # nothing below the first site changes while training: run those blocks once per example
    frozen = supports_forward_from(hf)
    hidden = frozen_inputs(hf, groups, resolved[0].layer) if frozen else None
    retain_hidden = (
        frozen_inputs(hf, retain_groups, resolved[0].layer) if frozen and retain_groups else None
    )
    held_hidden = (
        frozen_inputs(hf, held_groups, resolved[0].layer) if frozen and held_groups else None
    )
    with torch.no_grad():  # the unsteered model's next-token distributions at the retain replies
        reference = [
            reply_logprobs(
                hf,
                pack(
                    [g],
                    model.pad_id,
                    model.device,
                    None if retain_hidden is None else [retain_hidden[i]],
                ),
                full=True,
            ).half()
            for i, g in enumerate(retain_groups)
        ]
    retain_order = list(range(len(retain_groups)))
    per_retain = max(1, len(retain_order) // cfg.retain_batch_size)

    def batch(pool: list[Group], frozen_rows: list[FrozenInputs] | None, rows: list[int]) -> Packed:
        return pack(
            [pool[i] for i in rows],
            model.pad_id,
            model.device,
            None if frozen_rows is None else [frozen_rows[i] for i in rows],
        )

    def held_loss() -> float:
        with torch.no_grad():
            packed = batch(held_groups, held_hidden, list(range(len(held_groups))))
            return float(-reply_means(reply_logprobs(hf, packed), packed).mean())

    best: tuple[float, int, list[torch.Tensor]] | None = None
    with _Frozen(hf.hf), get_backend("hf").add_hooks(hf, hooks):
        for step in range(cfg.steps):
            if step % per_epoch == 0:
                rng.shuffle(order)
            k = (step % per_epoch) * cfg.batch_size
            packed = batch(groups, hidden, order[k : k + cfg.batch_size])
            loss = -reply_means(reply_logprobs(hf, packed), packed).mean()
            kl_value = None
            if retain_groups:
                if step % per_retain == 0:
                    rng.shuffle(retain_order)
                j = (step % per_retain) * cfg.retain_batch_size
                rows = retain_order[j : j + cfg.retain_batch_size]
                rpacked = batch(retain_groups, retain_hidden, rows)
                logq = reply_logprobs(hf, rpacked, full=True)  # (N, V) steered
                logp = torch.cat([reference[i] for i in rows]).to(logq.device).float()  # (N, V)
                kl = (logp.exp() * (logp - logq)).sum(-1).mean()
                kl_value = kl
                loss = loss + cfg.retain_weight * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            last = step == cfg.steps - 1
            if held_groups and cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or last):
                value = held_loss()
                if best is None or value < best[0]:
                    best = (value, step + 1, [p.detach().clone() for p in module.parameters()])
                if log is not None:
                    log(f"step {step + 1}/{cfg.steps} held-out loss {value:.3f}")
            if step % 10 == 0 or last:
                value = float(loss.detach())
                history.append(value)
                if log is not None:
                    extra = "" if kl_value is None else f" retain KL {float(kl_value.detach()):.4f}"
                    log(
                        f"step {step + 1}/{cfg.steps} loss {value:.3f}{extra} ({time.monotonic() - started:.0f} s)"
                    )
    if best is not None:
        with torch.no_grad():
            for p, kept in zip(module.parameters(), best[2], strict=True):
                p.copy_(kept)
    parts = {
        s.name: tuple(
            t.detach().float().cpu().clone() for t in (module.R[i], module.W[i], module.b[i])
        )
        for i, s in enumerate(resolved)
    }
    info = {
        "method": "lowrank",
        "rank": str(cfg.rank),
        "steps": str(cfg.steps),
        "lr": str(cfg.lr),
        "n_train": str(len(groups)),
        "final_loss": f"{history[-1]:.4f}",
        **(
            {"held_out_loss": f"{best[0]:.4f}", "kept_step": str(best[1])}
            if best is not None
            else {}
        ),
        **(
            {"n_retain": str(len(retain_groups)), "retain_weight": str(cfg.retain_weight)}
            if retain_groups
            else {}
        ),
        "seconds": f"{time.monotonic() - started:.0f}",
        **dict(meta or {}),
    }
    return LowRankIntervention(parts, model_meta(model), info)


def _groups(
    model: OysterModel, prompts: Sequence[str], targets: Sequence[str], max_tokens: int
) -> list[Group]:
    """One teacher-forcing group per (prompt, target): the target's ids plus the end of turn."""
    if len(prompts) != len(targets):
        raise ValueError(
            f"got {len(prompts)} prompts and {len(targets)} targets: pass one target per prompt"
        )
    eos = model.tokenizer.eos_token_id
    groups = []
    for i, (p, t) in enumerate(zip(prompts, targets, strict=True)):
        ids = list(model.tokenizer(t, add_special_tokens=False)["input_ids"]) + (
            [eos] if eos is not None else []
        )
        if not t.strip() or len(ids) > max_tokens:
            raise ValueError(
                f"target {i} has {len(ids)} tokens (with the end of turn) but max_reply_tokens={max_tokens}: "
                "shorten the target or raise InterventionConfig.max_reply_tokens"
                if t.strip()
                else f"target {i} is empty: give every prompt a non-empty target reply"
            )
        groups.append(Group(chat_ids(model, p), (tuple(ids),)))
    return groups


def _sites(sites: Sequence[str | int | Site], n_layers: int) -> list[Site]:
    if isinstance(sites, (str, int, Site)):
        sites = [sites]
    if not sites:
        raise SiteError("train_intervention got no sites: pass e.g. sites=[12, 16, 20, 24]")
    out = []
    for s in sites:
        name = f"blocks.{s}.hook_resid_post" if isinstance(s, int) else s
        out.append(resolve_site(name, n_layers))
    return sorted(set(out), key=lambda s: s.order)
