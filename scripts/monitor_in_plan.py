"""What a control pack's risk monitor reads in the plan, against the same probe read by
``capture`` on the unsteered model (issue 15): per risk probe, the in-plan p(malicious) of
held-out prompts vs ``capture(pool=probe.pool)`` -> ``probs``, and how often the flag at the
probe's threshold differs, on the rows the gate steers (guide, redirect) and on the rows it
helps. A monitor after the pack's first write site reads the steered stream on steered rows; one
at the gate's site reads before any write.

    PYTHONPATH=$PWD python scripts/monitor_in_plan.py --risk probes/smollm2-135m-instruct/risk.safetensors runs/risk-last16.safetensors --n 24
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from oyster_steer import capture, load_model
from oyster_steer.backends import get_backend
from oyster_steer.control import load_plan, patch_plan
from oyster_steer.probes._data import probe_splits
from oyster_steer.probes._probe import load_probe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--plan", type=Path, default=Path("vectors/smollm2-135m-instruct/control.safetensors")
    )
    ap.add_argument("--risk", type=Path, nargs="+", required=True, help="risk probes to swap in")
    ap.add_argument("--n", type=int, default=24, help="validation prompts per intent")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    plan = load_plan(args.plan, model)
    val = probe_splits().validation
    recs = []
    for intent in ("benign", "borderline", "vulnerable", "malicious"):
        rows = sorted(
            (r for r in val if r.intent == intent and len(r.text) < 1500), key=lambda r: r.id
        )
        recs += rows[: args.n]
    texts = [r.text for r in recs]
    for path in args.risk:
        risk = load_probe(path, model)
        swapped = dataclasses.replace(plan, monitors={"risk": risk})  # same gate, same actions
        in_plan, strategy = [], []
        for i in range(0, len(texts), args.batch_size):
            batch = texts[i : i + args.batch_size]
            with patch_plan(model, swapped) as handle:
                ids, mask = model.encode(batch)
                with torch.no_grad():
                    get_backend(model.backend).forward(model, ids, mask)
                d = handle.decisions()
            in_plan.append(d.monitors["risk"][:, 1])
            strategy += d.strategy
        p_plan = torch.cat(in_plan)
        feats = capture(model, texts, risk.site, pool=risk.pool, progress=False)[risk.site]
        p_cap = risk.probs(feats.float())[:, 1]
        thr = float(risk.threshold)
        for name, keep in (
            ("helped", [s == "help" for s in strategy]),
            ("steered (guide/redirect)", [s != "help" for s in strategy]),
        ):
            k = torch.tensor(keep)
            if not k.any():
                continue
            diff = (p_plan[k] - p_cap[k]).abs()
            flips = ((p_plan[k] > thr) != (p_cap[k] > thr)).float()
            print(
                f"{path} ({risk.site.name}, pool {risk.pool}): {name} n={int(k.sum())}: "
                f"max |p_plan - p_capture| {float(diff.max()):.4f}, mean {float(diff.mean()):.4f}; "
                f"flag differs {int(flips.sum())}/{int(k.sum())}; flagged in plan "
                f"{int((p_plan[k] > thr).sum())}, by capture {int((p_cap[k] > thr).sum())}"
            )


if __name__ == "__main__":
    main()
