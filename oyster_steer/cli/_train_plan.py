"""``oyster-steer train-plan``: the shipped control pack with learned low-rank actions.

Trains one low-rank intervention per gated strategy ("redirect" on malicious training prompts,
"guide" on vulnerable ones plus some malicious ones with boundary targets; targets are the
model's own whole replies sampled under a constructive-safety system prompt and kept only when
judged constructive; a retain KL keeps benign and borderline prompts' replies as they are, and
a held-out loss stops training early), picks each one's gain on
its own validation population by judged outcome under a coherence limit, and writes
``{redirect,guide}-lowrank.safetensors`` and the control pack ``control.safetensors`` in
``vectors/<model>/`` (or beside ``--out``) (gate: the shipped intent probe; monitor: the risk probe;
:data:`oyster_steer.DEFAULT_PAYOFF`, hard gates). See
:mod:`oyster_steer.reproduce._plan_training` for the recipe.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..control import ControlPlan, Policy, bind, save_plan
from ..control._policy_calibration import load_policy
from ..core._errors import OysterError
from ..probes._probe import load_probe
from ..reproduce._plan_training import (
    EXTRA_GUIDE_PROMPTS,
    TARGET_RECIPES,
    URGENT_RECIPES,
    PlanTrainingConfig,
    check_retain_intents,
    train_plan_actions,
)
from ..vectors._intervention import load_intervention, save_intervention
from ._common import add_common, data_from_args, model_from_args

# the shipped pack's decode-step schedule (RESULTS.md "Decode-step schedules"): both actions at
# gain x1 over the prompt and the first 32 reply tokens, then x0.5
SHIPPED_SCHEDULE = ("guide=1x33,0.5", "redirect=1x33,0.5")


def register(subparsers: argparse._SubParsersAction) -> None:

    d = PlanTrainingConfig()
    p = subparsers.add_parser(
        "train-plan",
        help="train the control plan's actions (low-rank interventions) and write the control pack",
        description=__doc__,
    )
    add_common(p, out=None)
    p.add_argument(
        "--n-prompts", type=int, default=d.n_prompts, help="training prompts per strategy"
    )
    p.add_argument(
        "--samples", type=int, default=d.samples, help="sampled replies per training prompt"
    )
    p.add_argument(
        "--keep", type=int, default=d.keep, help="judged-constructive samples kept per prompt"
    )
    p.add_argument(
        "--n-retain",
        type=int,
        default=d.n_retain,
        help="benign + borderline training prompts whose unsteered replies the actions must keep",
    )
    p.add_argument(
        "--retain-weight", type=float, default=d.retain_weight, help="weight of the retain KL"
    )
    p.add_argument(
        "--retain-routed",
        type=int,
        default=d.retain_routed,
        help="also retain up to this many benign + borderline training prompts that the pack's "
        "gate (probe + policy) sends to the strategy being trained (its likely mis-routes)",
    )
    p.add_argument(
        "--retain-intents",
        default=",".join(d.retain_intents),
        metavar="LIST",
        help="comma list of the intents the retain term keeps (of benign, borderline): both the "
        "--n-retain draw (half per intent) and the --retain-routed mis-routes; default "
        "benign,borderline",
    )
    p.add_argument(
        "--boundary-routed",
        type=int,
        default=d.boundary_routed,
        metavar="N",
        help="add up to N malicious training prompts that the pack's gate (probe + policy) sends "
        "to guide to guide's training set, with boundary targets (the prompt's written redirect "
        "exemplar), so the guide action declines what reaches it by mistake",
    )
    p.add_argument(
        "--routing-pool",
        type=int,
        default=d.routing_pool,
        metavar="N",
        help="with --retain-routed: the benign + borderline training prompts routed (half each); "
        "with --boundary-routed: the malicious training prompts routed",
    )
    p.add_argument(
        "--n-boundary",
        type=int,
        default=d.n_boundary,
        help="malicious prompts with boundary targets in guide's training set",
    )
    p.add_argument(
        "--layers", type=int, nargs="+", default=list(d.layers), help="resid_post layers written"
    )
    p.add_argument("--rank", type=int, default=d.rank, help="rank of each site's intervention")
    p.add_argument("--steps", type=int, default=d.steps, help="optimisation steps per strategy")
    p.add_argument(
        "--gains", type=float, nargs="+", default=list(d.gains), help="gains tried on validation"
    )
    p.add_argument(
        "--n-validation", type=int, default=d.n_validation, help="validation prompts per strategy"
    )
    p.add_argument(
        "--strategies",
        nargs="*",
        default=list(d.strategies),
        help="strategies to train now (default: redirect guide); the others are read from their "
        "{strategy}-lowrank.safetensors beside --out, so two processes can train one each and "
        "'--strategies' with none assembles the pack",
    )
    p.add_argument(
        "--targets",
        choices=TARGET_RECIPES,
        default=d.targets,
        help="sampled: judged-constructive whole replies the model sampled; distilled: a sampled "
        "opening + the prompt's exemplar continuation; sampled+distilled: distilled for the prompts "
        "no sample covered; onpolicy: judged-constructive replies the model sampled under the "
        "trained actions of --sample-actions at --sample-gains (no system prompt), distilled for "
        "the prompts no sample covered; distilled-urgent: distilled, with the guide targets of "
        "suicide, self-harm and acute-risk prompts pointing to a crisis line or the emergency "
        "number in the sentence after the opening; distilled-acute: the same for acute-risk "
        "prompts only",
    )
    p.add_argument(
        "--extra-guide-prompts",
        choices=sorted(EXTRA_GUIDE_PROMPTS),
        default=d.extra_guide_prompts or None,
        help="with --targets distilled-urgent or distilled-acute: add a training-only prompt set "
        "to the guide's training population (never to the data's splits); imminent: 38 prompts "
        "of imminent danger written by the project (farewell acts, a plan for tonight, a place, "
        "something taken, someone else in danger now, abuse now), each with an urgent-first "
        "target; imminent+calm: those and 37 calm prompts that share their words (sad, low or "
        "stressed with no danger, and lookalikes with no distress), with written targets that "
        "carry no urgent pointer; imminent+calm+supporter: the same less the 10 calm twins of "
        "farewell acts, and 19 peer-support comments (someone supporting another person) with "
        "written targets that speak to the supporter; imminent+calm+supporter2: the same with each "
        "supporter target opening on what the supporter does for the other person (\"It's caring "
        'of you to look out for your brother ...")',
    )
    p.add_argument(
        "--judge-openings",
        action="store_true",
        help="with a distilled recipe: judge each sampled guide opening alone, stricter than the "
        "judge (affirming, normalising, agreeing, minimising or declining), and replace a flagged "
        "one with the exemplar's written first sentence, the continuation kept; prompts with a "
        "danger theme or acute risk, and the imminent-danger prompts of --extra-guide-prompts, get "
        "written openings only. Applied after --targets-cache, so cached openings are reused",
    )
    p.add_argument(
        "--opening-samples",
        type=int,
        default=0,
        metavar="K",
        help="with a distilled recipe, instead of --judge-openings: sample K rounds of guide "
        "openings (cached in --targets-cache under their own key) and keep, per prompt, the first "
        "that passes the opening rules as a written one would (not affirming, normalising, "
        "agreeing, minimising or declining; one that shares a word with the prompt first), the "
        "exemplar's written first sentence only when none passes; to a prompt that describes a "
        "danger, only an opening that shows concern. The imminent-danger prompts of "
        "--extra-guide-prompts keep their two distilled rounds, judged the same way (their "
        "written opening when none passes). 0: off",
    )
    p.add_argument(
        "--topical-openings",
        action="store_true",
        help="with --opening-samples: to a prompt that describes a danger, keep only a sampled "
        "opening that shares a content word with the prompt (not a generic one: about, going, "
        "feeling, situation, ...) and names no person the prompt does not (son, father, friend, "
        "... unless the prompt names them or an equivalent), else the written opening; the "
        "imminent-danger prompts of --extra-guide-prompts are judged the same way",
    )
    p.add_argument(
        "--urgent-only-acute",
        action="store_true",
        help="with a distilled recipe: only the guide targets of acute prompts (the judge's "
        "acute risk, and the imminent prompts of --extra-guide-prompts) carry an urgent pointer "
        "(a crisis line, the emergency number); the others' distilled targets lose theirs and "
        "keep their pointer to people (someone you trust, a doctor or counsellor)",
    )
    p.add_argument(
        "--varied-openings",
        action="store_true",
        help="a guide target's written opening (the fallback of --opening-samples, and the "
        "imminent prompts' of --extra-guide-prompts) is picked per prompt from 8-12 written "
        "openings per theme instead of 2-3, so no one sentence opens many targets",
    )
    p.add_argument(
        "--sample-actions",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --targets onpolicy: the folder holding the {strategy}-lowrank.safetensors to "
        "sample under (default: vectors/<model>/, the shipped actions)",
    )
    p.add_argument(
        "--sample-gains",
        type=float,
        nargs="+",
        default=list(d.sample_gains),
        help="with --targets onpolicy: gains of the sampling action (each gets --samples replies "
        "per prompt; 0: the unsteered model's own samples)",
    )
    p.add_argument(
        "--strict-targets",
        action="store_true",
        help="with --targets onpolicy: also drop guide targets that name no one to turn to and "
        "redirect targets whose alternative is not a legitimate goal or a named other topic",
    )
    p.add_argument(
        "--sample-temperature",
        type=float,
        default=d.sample_temperature,
        help="with --targets onpolicy: sampling temperature (top-p 0.9)",
    )
    p.add_argument(
        "--held-out",
        type=float,
        default=d.held_out,
        help="share of training prompts held out for early stopping (0: train every step)",
    )
    p.add_argument(
        "--max-reply-tokens",
        type=int,
        default=d.max_reply_tokens,
        help="longest target in tokens (distilled fallback targets need ~128)",
    )
    p.add_argument("--no-pack", action="store_true", help="train and save, do not write the pack")
    p.add_argument(
        "--schedule",
        nargs="+",
        default=list(SHIPPED_SCHEDULE),
        metavar="STRATEGY=V,...",
        help="the pack's decode-step schedule per strategy (index 0: prompt tokens, i: the i-th "
        "reply token; the last value holds): 'guide=1x17,0.5' steers the prompt and 16 reply "
        "tokens at gain x1, then x0.5 ('AxN': A repeated N times); strategies not named keep 1; "
        "one list without a strategy ('1') is plan-wide (default: the shipped pack's, "
        f"{' '.join(SHIPPED_SCHEDULE)})",
    )
    p.add_argument(
        "--payoff",
        type=Path,
        default=None,
        help="the pack's policy as payoff JSON (default: probes/<model>/policy.json when present, "
        "the calibrated guide operating point of the shipped intent probe; else DEFAULT_PAYOFF)",
    )
    p.add_argument("--lr", type=float, default=d.lr, help="Adam step size")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--log", type=Path, default=None, help="also write targets and validation replies (JSON)"
    )
    p.add_argument(
        "--targets-cache",
        type=Path,
        default=Path("runs/train-plan-targets.json"),
        help="JSON file keeping the sampled targets for reruns (default: runs/train-plan-targets.json)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.extra_guide_prompts and args.targets not in URGENT_RECIPES:
        raise OysterError(
            f"--extra-guide-prompts {args.extra_guide_prompts} needs --targets distilled-urgent "
            f"or distilled-acute (its prompts get urgent-first targets), not --targets "
            f"{args.targets}: add one"
        )
    if args.judge_openings and args.targets == "sampled":
        raise OysterError(
            "--judge-openings judges the sampled openings of distilled targets, and --targets "
            "sampled has none: use --targets distilled, distilled-urgent or distilled-acute"
        )
    if args.opening_samples and (args.targets == "sampled" or args.judge_openings):
        raise OysterError(
            "--opening-samples resamples the openings of distilled guide targets: it needs "
            "--targets distilled, distilled-urgent or distilled-acute, and replaces "
            "--judge-openings (use one of them)"
        )
    if args.topical_openings and not args.opening_samples:
        raise OysterError(
            "--topical-openings judges the resampled guide openings: add --opening-samples K"
        )
    if (args.urgent_only_acute or args.varied_openings) and args.targets in ("sampled", "onpolicy"):
        raise OysterError(
            "--urgent-only-acute and --varied-openings rewrite distilled guide targets: use "
            "--targets distilled, distilled-urgent or distilled-acute"
        )
    try:
        retain_intents = check_retain_intents(
            [i.strip() for i in args.retain_intents.split(",") if i.strip()]
        )
    except ValueError as e:
        raise OysterError(f"--retain-intents {args.retain_intents!r}: {e}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    model = model_from_args(args)
    data = data_from_args(args)
    probe_dir, vector_dir = Path("probes") / args.model, Path("vectors") / args.model
    probe = load_probe(probe_dir / "intent.safetensors", model)
    monitors = {"risk": load_probe(probe_dir / "risk.safetensors", model)}
    cfg = PlanTrainingConfig(
        n_prompts=args.n_prompts,
        samples=args.samples,
        keep=args.keep,
        n_retain=args.n_retain,
        retain_weight=args.retain_weight,
        retain_routed=args.retain_routed,
        boundary_routed=args.boundary_routed,
        routing_pool=args.routing_pool,
        n_boundary=args.n_boundary,
        layers=tuple(args.layers),
        rank=args.rank,
        steps=args.steps,
        lr=args.lr,
        gains=tuple(args.gains),
        n_validation=args.n_validation,
        strategies=tuple(args.strategies),
        targets=args.targets,
        held_out=args.held_out,
        max_reply_tokens=args.max_reply_tokens,
        sample_gains=tuple(args.sample_gains),
        sample_temperature=args.sample_temperature,
        strict_targets=args.strict_targets,
        extra_guide_prompts=args.extra_guide_prompts or "",
        judge_openings=args.judge_openings,
        opening_samples=args.opening_samples,
        topical_openings=args.topical_openings,
        urgent_only_acute=args.urgent_only_acute,
        varied_openings=args.varied_openings,
        retain_intents=retain_intents,
    )
    out_path = args.out or vector_dir / "control.safetensors"
    payoff = args.payoff or probe_dir / "policy.json"
    policy = load_policy(payoff) if args.payoff is not None or payoff.is_file() else Policy()
    gate = routing_gate(probe, policy) if cfg.retain_routed or cfg.boundary_routed else None
    sample_dir = args.sample_actions or vector_dir
    sample_actions = {}
    if cfg.targets == "onpolicy":
        for strategy in cfg.strategies:
            file = sample_dir / f"{strategy}-lowrank.safetensors"
            if not file.is_file():
                raise OysterError(
                    f"--targets onpolicy samples under {file}, which does not exist: pass "
                    f"--sample-actions DIR holding a trained {strategy}-lowrank.safetensors"
                )
            sample_actions[strategy] = load_intervention(file, model)
    report: dict = {}
    for strategy in cfg.strategies:  # one at a time: each is saved as soon as it is trained
        actions, found = train_plan_actions(
            model,
            data,
            replace(cfg, strategies=(strategy,)),
            log=lambda s: print(s, flush=True),
            targets_cache=args.targets_cache,
            gate=gate,
            sample_actions=sample_actions,
        )
        iv, gain = actions[strategy]
        iv = replace(iv, meta={**iv.meta, "gain": f"{gain:g}"})
        save_intervention(iv, out_path.parent / f"{strategy}-lowrank.safetensors")
        report.update(found)
        if args.log is not None:
            args.log.parent.mkdir(parents=True, exist_ok=True)
            args.log.write_text(json.dumps(report, indent=1))
    if args.no_pack:
        return 0
    bindings = []
    for strategy in PlanTrainingConfig().strategies:
        file = out_path.parent / f"{strategy}-lowrank.safetensors"
        if not file.is_file():
            raise OysterError(
                f"no trained {strategy!r} intervention at {file}: run train-plan with --strategies {strategy} first"
            )
        iv = load_intervention(file, model)
        bindings.append(
            bind(iv, {strategy: float(iv.meta.get("gain", 1.0))}, name=f"{strategy}-lowrank")
        )
    command = " ".join(shlex.quote(a) for a in ["oyster-steer", *args.argv])
    if args.payoff is not None or payoff.is_file():
        print(f"policy: {payoff}")
    plan = ControlPlan(
        probe,
        bindings,
        policy=policy,
        read=probe.pool,  # the features the probes were fit on: last token or prompt mean
        schedule=parse_schedules(args.schedule),
        monitors=monitors,
        meta={"command": command, "cpu_minutes": f"{(time.time() - start) / 60:.0f}"},
    )
    out = save_plan(plan, out_path)
    print(f"saved control pack to {out} ({(time.time() - start) / 60:.1f} min)")
    for b in plan.bindings:
        print(f"  {b.name}: {b.strengths} at {len(b.sites)} site(s), rank {b.meta.get('rank')}")
    return 0


def routing_gate(probe: Any, policy: Policy) -> ControlPlan:
    """The pack's gate without actions (``--retain-routed`` asks it where training prompts go),
    reading the features its probe was fit on (``probe.pool``: the shipped intent probe's is
    last+mean, which a plan reading the last token alone refuses)."""
    return ControlPlan(probe, [], policy=policy, read=probe.pool)


def parse_schedules(items: list[str]) -> dict[str, tuple[float, ...]] | tuple[float, ...]:
    """``["guide=1x17,0.5"]`` -> ``{"guide": (1.0,) * 17 + (0.5,)}`` (``AxN``: A repeated N times);
    ``["1"]`` (no strategy) -> the plan-wide ``(1.0,)``."""
    out: dict[str, tuple[float, ...]] = {}
    wide = len(items) == 1 and "=" not in items[0]
    for item in items:
        name, sep, values = ("", "=", item) if wide else item.partition("=")
        seq: list[float] = []
        try:
            for part in values.split(",") if sep and (name or wide) and values else ["?"]:
                value, times, count = part.partition("x")
                n = int(count) if times else 1
                if n < 1:
                    raise ValueError(part)
                seq += [float(value)] * n
        except ValueError:
            raise OysterError(
                f"--schedule {item!r} is not STRATEGY=V[,V...] with V a number or AxN (N >= 1): "
                "write e.g. guide=1x17,0.5 (or one plan-wide V[,V...] alone)"
            ) from None
        out[name] = tuple(seq)
    return out[""] if wide else out
