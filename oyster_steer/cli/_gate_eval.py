"""``oyster-steer gate-eval``: the plan's probe and policy on external prompt sets, with intervals."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..control import load_plan
from ..data import PromptRecord, PromptSet, load_table
from ..eval import GATE_HEADING, gate_report, gate_section, score_gate, shift_sets
from ..probes import load_probe
from ..reproduce._markdown import write_section
from ._common import add_common, label_mapping, model_from_args, positive_int

DEFAULT_PLAN = "vectors/smollm2-135m-instruct/control.safetensors"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gate-eval",
        help="score the gate (probe + policy) on external prompt sets: per-source/per-attack tables",
        description=(
            "Read each prompt's intent with a control plan's probe at the last prompt token (capture -> probs, "
            "as a user would), flag it with the plan's risk monitor at its shipped threshold, take the policy's "
            "decision, and print per-source, per-attack and self-harm tables with seeded 95%% bootstrap "
            "intervals. Prompts: --prompts FILE (CSV/TSV/JSONL/JSON with a text and an intent column) and/or "
            "--shift-sets (the shared phtest, CoCoNot contrast, JailbreakBench artifacts, in-the-wild jailbreak "
            "and VERA-MH sets plus seeded attack transforms around benign and malicious requests)."
        ),
    )
    add_common(p, out="runs/gate_eval.md")
    p.add_argument(
        "--plan",
        type=Path,
        default=Path(DEFAULT_PLAN),
        help=f"control pack (default: {DEFAULT_PLAN})",
    )
    p.add_argument(
        "--risk-probe",
        type=Path,
        default=None,
        help="risk probe (default: the plan's risk monitor)",
    )
    p.add_argument("--prompts", type=Path, default=None, help="an external prompt file")
    p.add_argument(
        "--text-column", default="prompt", help="column holding the prompt (default: prompt)"
    )
    p.add_argument(
        "--intent-column",
        default="intent",
        help="column holding the intent, or one intent for every row (default: intent)",
    )
    p.add_argument(
        "--intent-map", type=label_mapping, default=None, help="map column values to intents"
    )
    p.add_argument("--source-column", default=None, help="column naming each row's source")
    p.add_argument("--attack-column", default=None, help="column naming each row's attack")
    p.add_argument(
        "--shift-sets", action="store_true", help="add the shared distribution-shift sets"
    )
    p.add_argument(
        "--split",
        choices=["train", "validation", "test", "all"],
        default="test",
        help="rows of the shift sets the probes train on kept from this hash split (default: test; "
        "'all' keeps every row, as before the probes were retrained on them)",
    )
    p.add_argument(
        "--n", type=positive_int, default=40, help="prompts per shift source and part (default: 40)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="sampling, transform and bootstrap seed (default: 0)"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=8, help="prompts per forward pass (default: 8)"
    )
    p.add_argument(
        "--rows", type=Path, default=None, help="also write every scored row as JSONL here"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="also write the '## The gate under distribution shift' section of this markdown file",
    )
    p.set_defaults(func=run)


def _external(args: argparse.Namespace) -> Any:
    meta = [c for c in (args.source_column, args.attack_column) if c]
    ps = load_table(
        args.prompts,
        args.text_column,
        intent=args.intent_column,
        intent_map=args.intent_map,
        meta_columns=meta,
    )
    out = []
    for r in ps:
        m = dict(r.meta)
        if args.attack_column:
            m["attack"] = m.get(args.attack_column, "")
        src = m.get(args.source_column, r.source) if args.source_column else r.source
        out.append(PromptRecord(r.text, r.intent, r.risk, r.category, src or r.source, meta=m))
    return PromptSet(out)


def run(args: argparse.Namespace) -> int:
    if args.prompts is None and not args.shift_sets:
        raise ValueError("no prompts: pass --prompts FILE and/or --shift-sets")
    records: list[Any] = []
    if args.prompts is not None:
        records += list(_external(args))
    if args.shift_sets:
        split = None if args.split == "all" else args.split
        records += list(shift_sets(args.data, n=args.n, seed=args.seed, split=split))
    model = model_from_args(args)
    plan = load_plan(args.plan, model)
    risk = load_probe(args.risk_probe, model) if args.risk_probe else None
    rows = score_gate(
        model, records, plan, risk=risk, batch_size=args.batch_size, progress=not args.quiet
    )
    cmd = "oyster-steer " + " ".join(args.argv)
    strategies = (
        plan.policy.strategies if plan.policy is not None else ("help", "guide", "redirect")
    )
    text = f"`{cmd}`\n\n{len(rows)} prompts; plan {args.plan}.\n\n" + gate_report(
        rows, strategies=strategies, seed=args.seed
    )
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if args.results is not None:
        write_section(args.results, gate_section(rows, cmd, seed=args.seed), GATE_HEADING)
    if args.rows is not None:
        args.rows.parent.mkdir(parents=True, exist_ok=True)
        with open(args.rows, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return 0
