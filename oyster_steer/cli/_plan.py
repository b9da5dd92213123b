"""``oyster-steer build-plan``: the shipped control pack, from the shipped probes and vectors.

Default for a model ``M`` (what ``vectors/M/control.safetensors`` is built from):

* gate: ``probes/M/intent.safetensors`` (benign / borderline / vulnerable / malicious);
* monitor: ``probes/M/risk.safetensors`` (recorded only);
* policy: :data:`oyster_steer.DEFAULT_PAYOFF`, hard gates;
* vectors: ``constructive`` -> guide only, ``refusal`` -> redirect, each at its own
  calibrated strength (``1x``); nothing for help. An anti-refusal (constructive) vector is never
  bound to the strategy the policy picks for malicious users (it would steer them toward
  compliance): such a ``--vector`` is refused unless ``--allow-compliance-steering`` is given;
* read the last prompt token; write at all positions; constant schedule.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from ..control import ControlPlan, save_plan
from ..control._plan import READS, bind
from ..control._policy import Policy
from ..control._spans import parse_positions
from ..probes._probe import load_probe
from ..vectors._vector import load_vector
from ._common import add_common, add_force, model_from_args, positive_int, refuse_overwrite

_DEFAULT_VECTORS = (
    "constructive=constructive.safetensors:guide=1x",
    "refusal=refusal.safetensors:redirect=1x",
)


def _positions(value: str) -> str:
    try:
        parse_positions(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build-plan",
        help="bundle probes, steering vectors and a policy into one control pack",
        description="Build a probe-gated control plan and save it as one safetensors control pack "
        "(default: vectors/<model>/control.safetensors from the shipped probes and vectors).",
    )
    add_common(p, out=None)
    p.add_argument(
        "--probe",
        type=Path,
        default=None,
        help="gating probe (default: probes/<model>/intent.safetensors)",
    )
    p.add_argument(
        "--monitor",
        action="append",
        default=None,
        metavar="NAME=PATH",
        help="a probe only recorded (default: risk=probes/<model>/risk.safetensors)",
    )
    p.add_argument(
        "--vector",
        action="append",
        default=None,
        metavar="NAME=PATH:STRATEGY=STRENGTH,...",
        help="a vector bound to strategies; STRENGTH is absolute, or '2x' = twice the vector's calibrated strength; "
        "a relative PATH is looked up in vectors/<model>/ (default: "
        + " ".join(_DEFAULT_VECTORS)
        + ")",
    )
    p.add_argument(
        "--payoff",
        type=Path,
        default=None,
        help='JSON {"strategies": [...], "intents": [...], "payoff": [[...]]} (default: DEFAULT_PAYOFF)',
    )
    p.add_argument(
        "--mode", choices=("hard", "soft"), default="hard", help="gate mode (default hard)"
    )
    p.add_argument(
        "--temperature", type=float, default=0.1, help="softness of soft gates, in utility units"
    )
    p.add_argument(
        "--read",
        choices=READS,
        default=None,
        help="where the probe reads (default: the probe's own features, last token or mean over "
        "the prompt; after_thinking: at a reasoning model's </think>)",
    )
    p.add_argument("--window", type=positive_int, default=4, help="tokens of a window read")
    p.add_argument(
        "--positions",
        type=_positions,
        default="all",
        help="where vectors write: all, prompt, generated, thinking, answer, or names joined by '+' (default all)",
    )
    p.add_argument(
        "--schedule",
        type=float,
        nargs="+",
        default=[1.0],
        help="strength multiplier per decode step (last holds)",
    )
    p.add_argument(
        "--allow-compliance-steering",
        action="store_true",
        help="permit an anti-refusal (constructive) vector on the strategy chosen for malicious users "
        "(refused by default: it steers attackers toward compliance); for deliberate experiments only",
    )
    add_force(p)
    p.set_defaults(func=run)


def _strength(spec: str, vector: Any) -> float:
    spec = spec.strip()
    if spec.endswith("x"):
        return float(spec[:-1]) * float(getattr(vector, "strength", 1.0))
    return float(spec)


def _binding(spec: str, vector_dir: Path, model: Any) -> Any:
    """``NAME=PATH:STRATEGY=STRENGTH,...`` -> a Binding."""

    try:
        name, rest = spec.split("=", 1)
        path, strategies = rest.split(":", 1)
        pairs = [item.split("=", 1) for item in strategies.split(",") if item]
        if not name or not path or not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError
    except ValueError:
        raise ValueError(
            f"--vector {spec!r} is not NAME=PATH:STRATEGY=STRENGTH,...: e.g. constructive=c.safetensors:guide=1x"
        ) from None
    file = Path(path) if Path(path).is_absolute() or Path(path).exists() else vector_dir / path
    vector = load_vector(file, model)
    return bind(vector, {s: _strength(v, vector) for s, v in pairs}, name=name)


def _policy(args: argparse.Namespace) -> Any:
    import torch

    if args.payoff is None:
        return Policy(mode=args.mode, temperature=args.temperature)
    try:
        spec = json.loads(Path(args.payoff).read_text())
        payoff, strategies, intents = spec["payoff"], spec["strategies"], spec["intents"]
        return Policy(
            torch.tensor(payoff), tuple(strategies), tuple(intents), args.mode, args.temperature
        )
    except (KeyError, TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise ValueError(
            f"--payoff {str(args.payoff)!r} is not a payoff file ({type(err).__name__}: {err}): "
            'write JSON {"strategies": [...], "intents": [...], "payoff": [[...], ...]}'
        ) from None


def _command(args: argparse.Namespace) -> str:
    """The equivalent command line, recorded in the pack's metadata."""
    parts = ["oyster-steer", "build-plan", "--model", args.model]
    for flag, value in (("--probe", args.probe), ("--payoff", args.payoff), ("--out", args.out)):
        parts += [flag, str(value)] if value is not None else []
    for flag, values in (("--monitor", args.monitor), ("--vector", args.vector)):
        for value in values or ():
            parts += [flag, value]
    parts += ["--mode", args.mode, "--temperature", str(args.temperature)]
    parts += ["--read", args.read] if args.read is not None else []  # else: the probe's pool
    parts += ["--window", str(args.window), "--positions", args.positions]
    parts += ["--schedule", *map(str, args.schedule)]
    parts += ["--allow-compliance-steering"] if args.allow_compliance_steering else []
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:

    probe_dir, vector_dir = Path("probes") / args.model, Path("vectors") / args.model
    out = refuse_overwrite(args.out or vector_dir / "control.safetensors", args)
    model = model_from_args(args)
    probe = load_probe(args.probe or probe_dir / "intent.safetensors", model)
    monitors = {}
    for spec in (
        args.monitor if args.monitor is not None else [f"risk={probe_dir / 'risk.safetensors'}"]
    ):
        name, sep, path = spec.partition("=")
        if not (sep and name and path):
            raise ValueError(
                f"--monitor {spec!r} is not NAME=PATH: e.g. risk=probes/m/risk.safetensors"
            )
        monitors[name] = load_probe(path, model)
    bindings = [_binding(spec, vector_dir, model) for spec in args.vector or _DEFAULT_VECTORS]
    command = _command(args)
    plan = ControlPlan(
        probe,
        bindings,
        _policy(args),
        read=args.read or probe.pool,
        window=args.window,
        positions=args.positions,
        schedule=args.schedule,
        monitors=monitors,
        meta={"command": command},
        allow_compliance_steering=args.allow_compliance_steering,
    )
    out = save_plan(plan, out)
    print(f"saved control pack to {out}")
    print(f"  gate: {probe.site.name} {list(probe.labels)}; monitors: {sorted(monitors)}")
    print(f"  policy: {plan.policy}")
    for b in plan.bindings:
        print(f"  {b.name}: {b.strengths} at {len(b.directions)} site(s)")
    return 0
