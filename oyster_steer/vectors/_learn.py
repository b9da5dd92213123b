"""Learning a steering vector by gradient descent through the frozen model (BiPO-style).

With ``v`` added at the chosen sites (every position), the loss for a prompt with preferred reply
``y+`` and dispreferred replies ``y-`` is

    -log sigmoid(beta * [(lp_v(y+) - lp_0(y+)) - (lp_v(y-) - lp_0(y-))])

averaged over its ``y-`` (``lp`` = mean token log-probability of the reply, ``_0`` = unsteered; a
length-normalised DPO/BiPO preference, so a long constructive reply is not penalised against a
short refusal), plus ``kl_weight`` times the KL(unsteered || steered) of benign prompts'
next-token distributions (the last prompt token and the model's own first greedy tokens), which
keeps the vector from rewriting what the model does for everyone else.

Only the vector is optimised (Adam); the model's weights are frozen for the run and restored
after. Training is deterministic for a seed, stops early on validation loss, and checkpoints its
state to a safetensors file so that ``resume=True`` continues where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..activations._capture import capture
from ..activations._scoring import (
    FrozenInputs,
    Group,
    chat_ids,
    frozen_inputs,
    greedy_continuations,
    pack,
    reply_ids,
    reply_logprobs,
    reply_means,
    score_groups,
)
from ..backends import Hook, get_backend
from ..models._forward import supports_forward_from
from ._checkpoint import TrainState, load_state, save_state

if TYPE_CHECKING:
    from ..core._sites import Site
    from ..data._contrast import Contrast
    from ..models._model import OysterModel

__all__ = ["LearnConfig", "learn_directions"]


@dataclass(frozen=True)
class LearnConfig:
    """Settings of the learned method; defaults fit SmolLM2-135M on two CPU cores (~5-8 min)."""

    steps: int = 120  # optimisation steps (an upper bound: early stopping may end sooner)
    batch_size: int = 4  # contrast prompts per step, each scored with all its replies
    kl_batch_size: int = 4  # benign prompts per step for the KL penalty
    lr: float = 0.05  # Adam step size, in units of the site's typical per-coordinate activation
    beta: float = 4.0  # preference temperature on mean-token log-probability differences
    kl_weight: float = 1.0  # weight of the benign next-token KL
    kl_tokens: int = 4  # benign positions: the last prompt token + the model's first greedy tokens
    max_reply_tokens: int = 32  # replies are scored on their first tokens
    eval_every: int = 20  # validation loss every this many steps
    patience: int = 3  # stop after this many evaluations without improvement
    max_minutes: float | None = None  # wall-clock bound; the best vector so far is kept
    seed: int = 0


@dataclass
class _Material:
    """Tokenised examples with their unsteered references."""

    groups: list[Group]  # per contrast: prompt + [positive, *negatives]
    ref: list[torch.Tensor]  # per contrast: (1 + n_neg,) unsteered mean token log-probs
    kl_groups: list[Group]  # benign prompt + the model's own greedy continuation
    kl_ref: list[torch.Tensor]  # per benign prompt: (G, V) unsteered log-probs, float16
    hidden: list[FrozenInputs] | None = None  # per contrast: resid_pre of the first steered block
    kl_hidden: list[FrozenInputs] | None = None  # the same per benign prompt

    def __len__(self) -> int:
        return len(self.groups)


def _material(
    model: OysterModel,
    contrasts: Sequence[Contrast],
    kl_prompts: Sequence[str],
    cfg: LearnConfig,
    layer: int | None = None,
) -> _Material:
    """Tokenised groups and unsteered references; with ``layer``, also the groups' activations
    entering that block (the first steered one), so that steps run only the blocks above."""
    groups = [
        Group(
            chat_ids(model, c.prompt),
            tuple(reply_ids(model, r, cfg.max_reply_tokens) for r in (c.positive, *c.negatives)),
        )
        for c in contrasts
    ]
    kl_prompt_ids = [chat_ids(model, p) for p in kl_prompts]
    conts = greedy_continuations(model, kl_prompt_ids, cfg.kl_tokens)
    kl_groups = [Group(p, (c,)) for p, c in zip(kl_prompt_ids, conts, strict=True)]
    kl_ref = [lp.half() for lp in score_groups(model, kl_groups, full=True)]
    mat = _Material(groups, score_groups(model, groups), kl_groups, kl_ref)
    if layer is not None:
        mat.hidden = frozen_inputs(model, groups, layer)
        mat.kl_hidden = frozen_inputs(model, kl_groups, layer) if kl_groups else []
    return mat


def _terms(
    model: OysterModel, mat: _Material, idx: Sequence[int], kl_idx: Sequence[int], cfg: LearnConfig
) -> dict[str, torch.Tensor]:
    """Loss terms of one batch: preference, KL, and the steered margin (for logging)."""
    sizes = [len(mat.groups[i].replies) for i in idx]
    hidden = None
    if mat.hidden is not None and mat.kl_hidden is not None:
        hidden = [mat.hidden[i] for i in idx] + [mat.kl_hidden[j] for j in kl_idx]
    packed = pack(
        [mat.groups[i] for i in idx] + [mat.kl_groups[j] for j in kl_idx],
        model.pad_id,
        model.device,
        hidden,
        share_head=True,  # the learned vector edits every row alike: the chat head runs once
    )
    logp = reply_logprobs(model, packed, full=True)  # (N, V)
    is_kl = packed.reply_of >= sum(sizes)  # (N,) tokens of the benign continuations
    token_lp = logp.gather(-1, packed.targets.unsqueeze(-1)).squeeze(-1)  # (N,)
    means = reply_means(torch.where(is_kl, 0.0, token_lp), packed)[: sum(sizes)]  # (replies,)
    pref, margin = [], []
    for g, lp in zip(idx, torch.split(means, sizes), strict=True):
        delta = lp - mat.ref[g].to(lp.device)  # (1 + n_neg,)
        pref.append(F.softplus(-cfg.beta * (delta[0] - delta[1:])).mean())
        margin.append((lp[0] - lp[1:]).mean())
    kl = logp.new_zeros(())
    if kl_idx:
        ref = torch.cat([mat.kl_ref[j] for j in kl_idx]).to(logp.device, torch.float32)  # (N_kl, V)
        kl = (ref.exp() * (ref - logp[is_kl])).sum(-1).mean()
    pref_t, margin_t = torch.stack(pref).mean(), torch.stack(margin).mean()
    return {"loss": pref_t + cfg.kl_weight * kl, "pref": pref_t, "kl": kl, "margin": margin_t}


def _order(step: int, size: int, n: int, seed: int, salt: int) -> list[int]:
    """Indices of ``size`` examples for ``step``: seeded permutations, epoch after epoch."""
    out = []
    for k in range(step * size, (step + 1) * size):
        epoch, i = divmod(k, n)
        perm = torch.randperm(
            n, generator=torch.Generator().manual_seed(seed * 1_000_003 + salt * 7919 + epoch)
        )
        out.append(int(perm[i]))
    return out


@torch.no_grad()
def _evaluate(model: OysterModel, mat: _Material, cfg: LearnConfig) -> dict[str, float]:
    totals: dict[str, float] = {}
    n_batches = max(1, -(-len(mat.groups) // 8))
    kl_chunks = [list(range(len(mat.kl_groups)))[i::n_batches] for i in range(n_batches)]
    for b in range(n_batches):
        idx = list(range(len(mat.groups)))[b * 8 : (b + 1) * 8]
        terms = _terms(model, mat, idx, kl_chunks[b], cfg)
        for key, value in terms.items():
            totals[key] = totals.get(key, 0.0) + float(value) / n_batches
    return totals


def _activation_scale(model: OysterModel, sites: Sequence[Site], mat: _Material) -> float:
    """Median per-token activation norm at the sites / sqrt(d): the unit of ``lr``."""

    texts = [model.tokenizer.decode(list(g.prompt) + list(g.replies[0])) for g in mat.groups[:8]]
    acts = capture(model, texts, list(sites), pool="all", chat=False, progress=False)
    norms = torch.cat([acts[s.name].norm(dim=-1) for s in sites])
    return float(norms.median()) / model.d_model**0.5


class _Frozen:
    """Context manager: no weight of the model requires grad inside it (restored after)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.params = list(module.parameters())

    def __enter__(self) -> None:
        self.flags = [p.requires_grad for p in self.params]
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p, flag in zip(self.params, self.flags, strict=True):
            p.requires_grad_(flag)


def learn_directions(
    model: OysterModel,
    contrasts: Sequence[Contrast],
    kl_prompts: Sequence[str],
    sites: Sequence[Site],
    *,
    validation: tuple[Sequence[Contrast], Sequence[str]],
    config: LearnConfig,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    key: str = "",
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimise one vector per site; returns ``({site: (d,) tensor}, summary)``."""

    model = model.with_backend("hf")  # same weights; gradients flow through plain torch hooks
    # nothing below the first steered block changes during training: run it once per example
    layer = min(s.layer for s in sites) if supports_forward_from(model) else None
    with _Frozen(model.hf):
        mat = _material(model, contrasts, kl_prompts, config, layer)
        val = _material(model, *validation, config, layer)
        scale = _activation_scale(model, sites, mat)
        params = {
            s.name: torch.zeros(model.d_model, device=model.device, requires_grad=True)
            for s in sites
        }
        opt = torch.optim.Adam(list(params.values()), lr=config.lr * scale)
        shaping = {
            k: v for k, v in asdict(config).items() if k not in ("steps", "max_minutes")
        }  # may change on resume
        key = json.dumps(
            {
                "config": shaping,
                "sites": [s.name for s in sites],
                "data": key,
                "model": model.fingerprint,
            }
        )
        state = (
            load_state(checkpoint, key, params, opt)
            if resume and checkpoint and Path(checkpoint).exists()
            else TrainState()
        )
        if state.stopped == "time":  # resuming is how a run that ran out of time goes on
            state.stopped = ""
        hooks = [Hook(s, _adder(params[s.name]), write=True) for s in sites]
        run = _Run(model, mat, val, params, opt, config, checkpoint, key, progress)
        with get_backend("hf").add_hooks(model, hooks):
            _loop(run, state)
    best = {name: t.detach().clone() for name, t in (state.best or params).items()}
    summary = {
        "steps": state.step,
        "best_step": state.best_step,
        "best_val_loss": state.best_val,
        "stopped": state.stopped,
        "lr_unit": scale,
        "history": state.history,
        "n_train": len(contrasts),
        "n_kl": len(kl_prompts),
    }
    return best, summary


def _adder(param: torch.Tensor) -> Any:
    def hook(h: torch.Tensor) -> torch.Tensor:  # (B, T, d) + (d,)
        return h + param.to(h.dtype)

    return hook


@dataclass(frozen=True)
class _Run:
    """What every optimisation step of one ``learn_directions`` call shares."""

    model: OysterModel
    mat: _Material  # training contrasts and KL prompts
    val: _Material  # validation contrasts and KL prompts
    params: dict[str, torch.Tensor]  # site name -> (d,) vector being learned
    opt: torch.optim.Optimizer
    cfg: LearnConfig
    checkpoint: str | Path | None
    key: str  # identifies the run in its checkpoint
    progress: bool


def _loop(run: _Run, state: TrainState) -> None:
    model, mat, cfg, opt = run.model, run.mat, run.cfg, run.opt
    started = time.monotonic()
    n, n_kl = len(mat.groups), len(mat.kl_groups)
    with tqdm(
        total=cfg.steps,
        initial=state.step,
        desc="learn vector",
        unit="step",
        disable=not run.progress,
    ) as bar:
        while state.step < cfg.steps and not state.stopped:
            idx = _order(state.step, cfg.batch_size, n, cfg.seed, 0)
            kl_idx = _order(state.step, cfg.kl_batch_size, n_kl, cfg.seed, 1) if n_kl else []
            terms = _terms(model, mat, idx, kl_idx, cfg)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            state.step += 1
            bar.update(1)
            bar.set_postfix({k: f"{float(v.detach()):.3f}" for k, v in terms.items()})
            timed_out = (
                cfg.max_minutes is not None and time.monotonic() - started > 60 * cfg.max_minutes
            )
            if state.step % cfg.eval_every == 0 or state.step == cfg.steps or timed_out:
                _validate(run, state, terms)
                if timed_out and not state.stopped:
                    state.stopped = "time"
                if run.checkpoint:
                    save_state(run.checkpoint, run.key, run.params, opt, state)


def _validate(run: _Run, state: TrainState, terms: dict[str, torch.Tensor]) -> None:
    cfg, params = run.cfg, run.params
    scores = _evaluate(run.model, run.val, cfg)
    state.history.append(
        {
            "step": state.step,
            "train_loss": float(terms["loss"].detach()),
            **{f"val_{k}": v for k, v in scores.items()},
        }
    )
    if state.best_val is None or scores["loss"] < state.best_val:
        state.best_val, state.best_step, state.bad_evals = scores["loss"], state.step, 0
        state.best = {k: p.detach().clone() for k, p in params.items()}
    else:
        state.bad_evals += 1
        if state.bad_evals >= cfg.patience:
            state.stopped = "early"
