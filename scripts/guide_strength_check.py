"""Would a guide gate scaled by the reading's risk mass spare the lookalikes? (issue 14/15, ninth session)

Two measurements on the shipped pack, printed:

1. Posterior only, from the ``train-probe`` capture cache: for the probe splits' validation and
   test rows the shipped policy routes to "guide", per intent, quantiles of the risk mass
   p(vulnerable) + p(malicious) and the share below 0.5 and 0.7. A gate scaled by that mass
   (full strength only for a confident risky reading) would weaken the guide on every row below
   its threshold, whatever the row's intent.
2. Replies: the guide binding's strength multiplied by 0.3 and 0.6 (routes unchanged), greedy,
   48 new tokens, judged, on the 48-per-intent test prompts of a results file whose shipped-pack
   reply differs from the unsteered one (benign and borderline rows it guided) plus its first 12
   vulnerable rows; every lookalike's replies are printed beside the stored unsteered and
   full-strength ones.

    python scripts/guide_strength_check.py --results runs/eval48-s9.jsonl --cache runs/capture-cache
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter
from pathlib import Path

import torch

from oyster_steer import load_model, load_probe
from oyster_steer.cli._probe import probe_features
from oyster_steer.control import load_plan, patch_plan
from oyster_steer.control._policy_calibration import load_policy
from oyster_steer.data import PromptRecord
from oyster_steer.eval import generate_replies, judge_replies
from oyster_steer.probes._data import probe_splits

PROBES = Path("probes/smollm2-135m-instruct")
PACK = "vectors/smollm2-135m-instruct/control.safetensors"
REFUSING = ("I can't", "I'm not able", "I won't")  # redirected rows, not guided


def risk_mass(model, cache: Path) -> None:
    probe = load_probe(PROBES / "intent.safetensors", model)
    policy = load_policy(PROBES / "policy.json").reindex(probe.labels)
    labels = list(probe.labels)
    guide = list(policy.strategies).index("guide")
    data = probe_splits()
    for split in ("validation", "test"):
        ps = data.split(split)
        post = probe.probs(probe_features(model, probe, ps.texts, cache)).cpu().float()
        guided = policy.gates(post).argmax(-1) == guide
        mass = post[:, labels.index("vulnerable")] + post[:, labels.index("malicious")]
        for intent in ("benign", "borderline", "vulnerable", "malicious"):
            sel = torch.tensor([r.intent == intent for r in ps]) & guided
            m = mass[sel]
            if not len(m):
                continue
            qs = ", ".join(f"{float(m.quantile(q)):.2f}" for q in (0.05, 0.1, 0.25, 0.5))
            print(
                f"{split} {intent}: guided {len(m)}, risk mass quantiles 5/10/25/50% {qs}, "
                f"below 0.5 {100 * float((m < 0.5).float().mean()):.0f}%, "
                f"below 0.7 {100 * float((m < 0.7).float().mean()):.0f}%"
            )


def replies(model, results: Path, scales: tuple[float, ...]) -> None:
    rows = [json.loads(line) for line in results.open(encoding="utf-8") if line.strip()]
    rows = [r for r in rows if r.get("kind") == "reply"]
    base = {r["id"]: r for r in rows if r["condition"] == "unsteered"}
    shipped = [r for r in rows if r["condition"] == "plan:control"]
    look = [
        r
        for r in shipped
        if r["intent"] in ("benign", "borderline")
        and r["reply"] != base[r["id"]]["reply"]
        and not r["reply"].startswith(REFUSING)
    ]
    chosen = look + [r for r in shipped if r["intent"] == "vulnerable"][:12]
    recs = [
        PromptRecord(
            r["prompt"],
            r["intent"],
            r["risk"],
            r.get("category") or "unknown",
            r["source"],
            id=r["id"],
        )
        for r in chosen
    ]
    plan = load_plan(PACK, model)
    out = {}
    for s in scales:
        bindings = [
            dataclasses.replace(
                b, strengths={k: v * s if k == "guide" else v for k, v in b.strengths.items()}
            )
            for b in plan.bindings
        ]
        with patch_plan(model, plan.replace(bindings=bindings)):
            texts = generate_replies(model, [r.text for r in recs], max_new_tokens=48)
        verdicts = [j["verdict"] for j in judge_replies(recs, texts, model=model)]
        out[s] = list(zip(texts, verdicts, strict=True))
    for intent in ("benign", "borderline", "vulnerable"):
        idx = [i for i, r in enumerate(chosen) if r["intent"] == intent]
        line = [
            f"unsteered {dict(Counter(base[chosen[i]['id']]['verdict'] for i in idx))}",
            f"x1 {dict(Counter(chosen[i]['verdict'] for i in idx))}",
        ]
        line += [f"x{s} {dict(Counter(out[s][i][1] for i in idx))}" for s in scales]
        print(f"{intent} (n {len(idx)}): " + "; ".join(line))
    for i, r in enumerate(chosen):
        if r["intent"] == "vulnerable":
            continue
        print(f"\n[{r['intent']}] {r['prompt'][:120]!r}")
        print(f"   unsteered {base[r['id']]['verdict']}: {base[r['id']]['reply'][:160]!r}")
        print(f"   x1 {r['verdict']}: {r['reply'][:160]!r}")
        for s in scales:
            print(f"   x{s} {out[s][i][1]}: {out[s][i][0][:160]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, required=True, help="a 48-per-intent eval results file")
    ap.add_argument("--cache", type=Path, default=Path("runs/capture-cache"))
    ap.add_argument("--scales", type=float, nargs="+", default=[0.3, 0.6])
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    risk_mass(model, args.cache)
    replies(model, args.results, tuple(args.scales))


if __name__ == "__main__":
    main()
