"""Would a veto of "redirect" by the plan's risk monitor cut over-refusal? (issue 15)

Reads a split of ``probe_splits()`` through the shipped control pack (``patch_plan``, one prompt
pass per row: ``generate_replies(max_new_tokens=1)``), then counts per intent the strategies the
plan chose and those a veto would choose: redirect only where the monitor flags at its own
threshold, otherwise the better of help and guide by the policy's expected utility. Prints the
malicious redirects the veto would lose and the benign/borderline ones it would remove.

    python scripts/monitor_veto.py --split validation --out runs/monitor-veto.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

import torch

from oyster_steer.control import DecisionLog, Decisions, load_plan, patch_plan
from oyster_steer.eval import generate_replies
from oyster_steer.models._model import load_model
from oyster_steer.probes._data import probe_splits

PACK = "vectors/smollm2-135m-instruct/control.safetensors"
INTENTS = ("benign", "borderline", "vulnerable", "malicious")


def readings(decisions: Decisions, batch: list[int], monitor: str) -> dict[int, dict[str, Any]]:
    """Per prompt index of ``batch``: the plan's strategy, its expected utility per strategy and
    the monitor's probability of its flagged class (the last; a binary probe's positive)."""
    flags = decisions.monitors[monitor][:, -1].tolist()  # (B,)
    eus = decisions.expected_utility.tolist()  # (B, S)
    return {
        i: {"strategy": decisions.strategy[j], "eu": eus[j], "flag": flags[j]}
        for j, i in enumerate(batch)
    }


def vetoed(reading: dict[str, Any], strategies: tuple[str, ...], threshold: float) -> str:
    """The strategy under the veto: a redirect stands only where the monitor flags (probability
    above its threshold, the probe's own rule); otherwise the best of the other strategies by
    expected utility. Redirect is the last strategy."""
    if reading["strategy"] != "redirect" or reading["flag"] > threshold:
        return str(reading["strategy"])
    eu = reading["eu"][:-1]  # help and guide
    return strategies[max(range(len(eu)), key=eu.__getitem__)]


def summary(out: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Lines per intent (the plan's strategies and the veto's), the counts of changed redirects,
    and the malicious rows whose redirect the veto loses."""
    lines = []
    for intent in INTENTS:
        rs = [o for o in out if o["intent"] == intent]
        lines.append(
            f"{intent:10s} n={len(rs):4d} plan {dict(Counter(o['strategy'] for o in rs))}"
            f" veto {dict(Counter(o['veto'] for o in rs))}"
        )
    lost = [o for o in out if o["intent"] == "malicious" and o["strategy"] != o["veto"]]
    kept = [
        o for o in out if o["intent"] in ("benign", "borderline") and o["strategy"] != o["veto"]
    ]
    lines.append(
        f"malicious redirects lost: {len(lost)}, by source {Counter(o['source'] for o in lost)}"
    )
    lines.append(f"benign/borderline redirects removed: {len(kept)}")
    return lines, lost


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="validation", choices=("validation", "test"))
    ap.add_argument("--pack", default=PACK)
    ap.add_argument("--monitor", default="risk")
    ap.add_argument("--out", default=None, help="also write the per-row decisions (JSON)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="only the first N rows (a quick check)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rows = getattr(probe_splits(), args.split)[: args.limit]
    model = load_model()
    plan = load_plan(args.pack, model)
    if args.monitor not in plan.monitors:
        raise SystemExit(
            f"the pack has no monitor {args.monitor!r}: it has {sorted(plan.monitors)}"
        )
    threshold = plan.monitors[args.monitor].threshold
    if threshold is None:
        raise SystemExit(f"the monitor {args.monitor!r} has no threshold: calibrate it first")
    if plan.policy is None:
        raise SystemExit(f"the pack {args.pack!r} has no policy: pass a pack with one")
    strategies = tuple(plan.policy.strategies)
    if strategies[-1] != "redirect":
        raise SystemExit(f"expected redirect as the last strategy, got {strategies}")
    with patch_plan(model, plan) as handle:
        log = DecisionLog(handle)
        generate_replies(model, [r.text for r in rows], max_new_tokens=1, decisions=log)
    found = readings(log.result(), list(range(len(rows))), args.monitor)
    out = [
        {"text": r.text, "intent": r.intent, "source": r.source, **found[i]}
        for i, r in enumerate(rows)
    ]
    for o in out:
        o["veto"] = vetoed(o, strategies, threshold)
    print(f"{args.split}: {len(out)} rows; monitor {args.monitor!r} threshold {threshold:.3f}")
    lines, lost = summary(out)
    print("\n".join(lines))
    for o in lost[:8]:
        print(f"  lost -> {o['veto']} (monitor {o['flag']:.2f}): {o['text'][:100]!r}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
