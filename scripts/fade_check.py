"""Fading decode-step schedules for a control pack on validation prompts (issue 14).

The pack's gated plan is run with schedules "gain 1 over the prompt and the first K reply tokens,
then ``tail``" (``K:tail``; ``0:0`` steers the prompt pass only, ``const`` is the pack's own
schedule) on the train-plan validation samples of the intents given (default 16 malicious + 16
vulnerable). Per schedule and intent: verdicts, prompts made worse against the unsteered reply,
reply perplexity under the unsteered model (median and geometric-mean ratio to the unsteered
reply of the same prompt) and topicality (mean, and its paired change). ``--forced`` also runs
each strategy's action ungated (what a mis-route does) on validation prompts of the other
intents. Replies are kept in the JSON output; replies to malicious prompts are data, read them,
do not publish them.

    python scripts/fade_check.py runs/fade.json --schedules const 0:0 8:0 16:0 32:0 16:0.5

``--analyse`` reads such a JSON file instead and prints where the replies' perplexity under the
unsteered model comes from: per schedule and intent, the perplexity of reply tokens 1-8, 9-16,
17-32 and 33+, and the reply tokens with the largest summed negative log-likelihood.

    python scripts/fade_check.py runs/fade.json --analyse --schedules unsteered const 16:0
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

import torch

import oyster_steer as osteer
from oyster_steer.control import load_plan, patch_plan
from oyster_steer.data import load_all
from oyster_steer.eval import generate_replies, judge_replies, made_worse
from oyster_steer.eval._coherence import _reply_logprobs
from oyster_steer.reproduce._plan_training import PlanTrainingConfig, _sample


def schedule_of(spec: str, base: tuple[float, ...]) -> tuple[float, ...]:
    """``const`` -> the pack's schedule; ``K:tail`` -> 1 for the prompt and K reply tokens, then tail."""
    if spec == "const":
        return base
    k, tail = spec.split(":")
    return (1.0,) * (int(k) + 1) + (float(tail),)


def summarise(
    recs: list[Any], rows: list[dict[str, Any]], base: list[dict[str, Any]] | None, intent: str
) -> dict[str, Any]:
    idx = [i for i, r in enumerate(recs) if r.intent == intent]
    verdicts = [rows[i]["verdict"] for i in idx]
    ppl = [rows[i]["reply_ppl"] or float("nan") for i in idx]
    top = [rows[i]["topicality"] or 0.0 for i in idx]
    out: dict[str, Any] = {
        "n": len(idx),
        "verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
        "median_ppl": statistics.median(ppl),
        "topicality": sum(top) / len(top),
    }
    if base is not None:
        out["made_worse"] = sum(
            made_worse(intent, base[i]["verdict"], rows[i]["verdict"]) for i in idx
        )
        logs = [
            math.log(rows[i]["reply_ppl"] / base[i]["reply_ppl"])
            for i in idx
            if rows[i]["reply_ppl"] and base[i]["reply_ppl"]
        ]
        out["ppl_ratio"] = math.exp(sum(logs) / len(logs)) if logs else float("nan")
        out["topicality_change"] = sum(
            (rows[i]["topicality"] or 0.0) - (base[i]["topicality"] or 0.0) for i in idx
        ) / len(idx)
    return out


def line(name: str, intent: str, s: dict[str, Any]) -> str:
    v = " ".join(f"{k} {n}" for k, n in s["verdicts"].items())
    extra = (
        f" worse {s['made_worse']}/{s['n']} ppl x{s['ppl_ratio']:.2f} dtop {s['topicality_change']:+.3f}"
        if "made_worse" in s
        else ""
    )
    return f"{name:>8} {intent:>10}: {v} | median ppl {s['median_ppl']:.2f} top {s['topicality']:.3f}{extra}"


SEGMENTS = {"1-8": (0, 8), "9-16": (8, 16), "17-32": (16, 32), "33+": (32, 10**6)}


def analyse(model: Any, data: dict[str, Any], schedules: list[str]) -> None:
    """Per-segment reply perplexity and the costliest tokens (see the module docstring)."""
    hf = model.with_backend("hf")
    prompts, intents = data["prompts"], data["intents"]
    for spec in schedules:
        rows = data["runs"][spec]["rows"]
        for intent in sorted(set(intents)):
            seg: dict[str, list[float]] = {k: [] for k in SEGMENTS}
            cost: dict[str, float] = {}
            for i in (i for i, it in enumerate(intents) if it == intent):
                head = hf.encode([prompts[i]])[0][0].tolist()
                tail = hf.tokenizer(rows[i]["reply"], add_special_tokens=False)["input_ids"]
                if not tail:
                    continue
                lp = _reply_logprobs(hf, [(head, tail)])[0]
                nll = (-lp.gather(-1, torch.tensor(tail, device=lp.device)[:, None]))[:, 0]
                for k, (a, b) in SEGMENTS.items():
                    seg[k] += nll[a:b].tolist()
                for t, v in zip(tail, nll.tolist(), strict=True):
                    word = hf.tokenizer.decode([t])
                    cost[word] = cost.get(word, 0.0) + v
            ppl = " ".join(f"{k} {math.exp(sum(v) / len(v)):.1f}" for k, v in seg.items() if v)
            top = sorted(cost.items(), key=lambda kv: -kv[1])[:8]
            print(f"{spec:>9} {intent:>10}: ppl by reply tokens {ppl}", flush=True)
            print(f"{'':>21} costliest: " + ", ".join(f"{w!r} {c:.0f}" for w, c in top))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="JSON file: summaries and replies per schedule")
    p.add_argument("--pack", default="vectors/smollm2-135m-instruct/control.safetensors")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--schedules", nargs="+", default=["const", "0:0", "8:0", "16:0", "32:0"])
    p.add_argument("--intents", nargs="+", default=["malicious", "vulnerable"])
    p.add_argument("--n", type=int, default=16, help="validation prompts per intent")
    p.add_argument("--max-new-tokens", type=int, default=48, help="as the eval's replies")
    p.add_argument(
        "--forced",
        nargs="*",
        default=[],
        help="schedules to also run each action ungated on 8 benign + 8 borderline prompts",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--analyse", action="store_true", help="analyse OUT (see above), no replies")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = osteer.load_model()
    if args.analyse:
        analyse(model, json.loads(args.out.read_text()), args.schedules)
        return
    cfg = PlanTrainingConfig()
    val = load_all(data_dir=args.data).split("validation")
    recs = [r for i in args.intents for r in _sample(model, val, i, args.n, cfg.seed + 1, 96)]
    prompts = [r.text for r in recs]
    plan = load_plan(args.pack, model)
    out: dict[str, Any] = {"prompts": prompts, "intents": [r.intent for r in recs], "runs": {}}

    def run(name: str, sched: tuple[float, ...] | None, use: Any, rs: list[Any]) -> list[dict]:
        texts = [r.text for r in rs]
        if sched is None:
            replies = generate_replies(model, texts, max_new_tokens=args.max_new_tokens)
        else:
            with patch_plan(model, use.replace(schedule=sched)):
                replies = generate_replies(model, texts, max_new_tokens=args.max_new_tokens)
        rows = judge_replies(rs, replies, model=model)
        for row, reply in zip(rows, replies, strict=True):
            row["reply"] = reply
        return rows

    base = run("unsteered", None, plan, recs)
    out["runs"]["unsteered"] = {"rows": base}
    for intent in args.intents:
        s = summarise(recs, base, None, intent)
        out["runs"]["unsteered"][intent] = s
        print(line("unsteered", intent, s), flush=True)
    for spec in args.schedules:
        rows = run(spec, schedule_of(spec, plan.schedule), plan, recs)
        out["runs"][spec] = {"schedule": schedule_of(spec, plan.schedule), "rows": rows}
        for intent in args.intents:
            s = summarise(recs, rows, base, intent)
            out["runs"][spec][intent] = s
            print(line(spec, intent, s), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1, default=str))
    if args.forced:
        others = [
            r for i in ("benign", "borderline") for r in _sample(model, val, i, 8, cfg.seed + 1, 96)
        ]
        base_o = run("unsteered", None, plan, others)
        out["forced"] = {"prompts": [r.text for r in others], "unsteered": base_o}
        for spec in args.forced:
            for b in plan.bindings:
                strategy = max(b.strengths, key=lambda s: b.strengths[s])
                # ungated: this binding on every strategy, so whatever the gate decides it fires
                forced = plan.replace(
                    bindings=[
                        b.__class__(
                            b.name,
                            b.directions,
                            dict.fromkeys(plan.strategies, b.strengths[strategy]),
                            b.meta,
                            b.lowrank,
                        )
                    ],
                    allow_compliance_steering=True,
                )
                rows = run(spec, schedule_of(spec, plan.schedule), forced, others)
                key = f"{strategy}@{spec}"
                out["forced"][key] = rows
                for intent in ("benign", "borderline"):
                    s = summarise(others, rows, base_o, intent)
                    print(line(key, intent, s), flush=True)
        args.out.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
