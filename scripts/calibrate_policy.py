"""Choose the policy's "guide" operating point on validation and write ``probes/<model>/policy.json``.

Reads the intent probe's posteriors of the probe splits from the ``train-probe`` capture cache
(the probe's own features: its pool and the sites ``train-probe`` captured), runs :func:`oyster_steer.control._policy_calibration.calibrate_guide`
on validation, prints the policy's decision distribution per intent for the default and the
chosen policy on validation and test (and the reddit-cssrs "Supportive" borderline rows and the
low-confidence vulnerable rows apart), and writes the payoff as JSON that ``build-plan --payoff``
and ``train-plan --payoff`` read.

    PYTHONPATH=$PWD python scripts/calibrate_policy.py [--write]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from oyster_steer import load_model, load_probe
from oyster_steer.cli._probe import probe_features
from oyster_steer.control import Policy
from oyster_steer.control._policy_calibration import (
    HELP_VULNERABLE,
    calibrate_guide,
    decision_table,
    load_policy,
)
from oyster_steer.probes._data import probe_splits


def _fmt(table: dict, strategies) -> list[str]:
    return [
        f"| {intent} | {int(row['n'])} | "
        + " | ".join(f"{100 * row[s]:.0f}%" for s in strategies)
        + " |"
        for intent, row in table.items()
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probes", type=Path, default=Path("probes/smollm2-135m-instruct"))
    ap.add_argument("--cache", type=Path, default=Path("runs/capture-cache"))
    ap.add_argument("--max-vulnerable-loss", type=float, default=0.01)
    ap.add_argument("--max-malicious-help-gain", type=float, default=0.04)
    ap.add_argument(
        "--max-benign-redirect-gain",
        type=float,
        default=None,
        help="at most this much more of the validation benign + borderline rows redirected than "
        "the reference (or default) gate (0: none more; default: no such budget)",
    )
    ap.add_argument(
        "--max-vulnerable-help",
        type=int,
        default=None,
        help="at most this many validation vulnerable rows sent to help that the reference (or "
        "default) gate does not help (0: none; default: no such budget)",
    )
    ap.add_argument(
        "--help-vulnerable",
        type=float,
        nargs="+",
        default=list(HELP_VULNERABLE),
        help="extra costs of helping a vulnerable reading to try (U[help, vulnerable] = -1 - hv)",
    )
    ap.add_argument("--write", action="store_true", help="write <probes>/policy.json")
    ap.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="a probes directory (intent.safetensors + policy.json) of the gate this one replaces: "
        "the budgets are measured against its decisions on the same rows instead of the default "
        "payoff's (e.g. a copy of the shipped probes/<model>)",
    )
    ap.add_argument(
        "--previous", type=Path, default=None, help="also tabulate this policy JSON (before/after)"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    probe = load_probe(args.probes / "intent.safetensors", model)
    data = probe_splits()
    post, recs = {}, {}
    for split in ("validation", "test"):
        ps = data.split(split)
        post[split] = probe.probs(probe_features(model, probe, ps.texts, args.cache)).cpu()
        recs[split] = list(ps)
    base = Policy().reindex(probe.labels)
    intents = {s: [r.intent for r in recs[s]] for s in recs}
    self_harm = {
        s: torch.tensor([r.intent == "vulnerable" and r.risk == "harmful" for r in recs[s]])
        for s in recs
    }
    reference, ref_post = None, {}
    if args.reference is not None:
        ref_probe = load_probe(args.reference / "intent.safetensors", model)
        ref_policy = load_policy(args.reference / "policy.json").reindex(probe.labels)
        for split in ("validation", "test"):
            feats = probe_features(model, ref_probe, data.split(split).texts, args.cache)
            # its posteriors in this probe's label order
            order = [list(ref_probe.labels).index(k) for k in probe.labels]
            ref_post[split] = ref_probe.probs(feats).cpu()[:, order]
        reference = (ref_policy, ref_post["validation"])
    cal = calibrate_guide(
        post["validation"],
        intents["validation"],
        base=base,
        max_vulnerable_loss=args.max_vulnerable_loss,
        max_malicious_help_gain=args.max_malicious_help_gain,
        self_harm=self_harm["validation"],
        reference=reference,
        help_vulnerable=args.help_vulnerable,
        max_vulnerable_help=args.max_vulnerable_help,
        max_benign_redirect_gain=args.max_benign_redirect_gain,
    )
    print(
        "validation grid (guide_malicious 0 and the chosen one): help_vulnerable, delta, "
        "guide_malicious, benign+borderline help/guide/redirect, vulnerable guide/help/redirect "
        "(%, and helped rows the reference does not help), malicious help/guide/redirect, self-harm help/guide/redirect (%)"
    )
    for g in cal.grid:
        if g["guide_malicious"] not in (0.0, cal.guide_malicious):
            continue
        v, m = g["table"]["vulnerable"], g["table"]["malicious"]
        sh = g.get("self_harm") or {k: float("nan") for k in ("help", "guide", "redirect")}
        print(
            f"  {g['help_vulnerable']:.1f} {g['delta']:.2f} {g['guide_malicious']:.1f}  "
            f"{100 * g['benign_borderline_help']:.1f}/{100 * g['benign_borderline_guide']:.1f}/{100 * g['benign_borderline_redirect']:.1f}  "
            f"{100 * v['guide']:.1f}/{100 * v['help']:.1f}/{100 * v['redirect']:.1f} (+{g['vulnerable_help_gain']})  "
            f"{100 * m['help']:.1f}/{100 * m['guide']:.1f}/{100 * m['redirect']:.1f}  "
            f"{100 * sh['help']:.1f}/{100 * sh['guide']:.1f}/{100 * sh['redirect']:.1f}"
        )
    print(
        f"chosen delta {cal.delta}, guide_malicious {cal.guide_malicious}, "
        f"help_vulnerable {cal.help_vulnerable}"
    )
    strategies = base.strategies
    head = "| intent | n | " + " | ".join(strategies) + " |\n|---|---|" + "---|" * len(strategies)
    for split in ("validation", "test"):
        chosen = (
            f"calibrated (delta {cal.delta}, guide_malicious {cal.guide_malicious}, "
            f"help_vulnerable {cal.help_vulnerable})"
        )
        named = [("default", base)]
        if args.previous is not None:
            named.append(("previous", load_policy(args.previous).reindex(probe.labels)))
        rows = [(n, p, post[split]) for n, p in named]
        if reference is not None:
            rows.append((f"reference ({args.reference})", reference[0], ref_post[split]))
        for name, pol, pst in [*rows, (chosen, cal.policy, post[split])]:
            print(f"\n{split}, {name} policy\n{head}")
            print("\n".join(_fmt(decision_table(pol, pst, intents[split]), strategies)))
            sup = torch.tensor([r.meta.get("cssrs") == "Supportive" for r in recs[split]])
            low = torch.tensor([r.intent == "vulnerable" for r in recs[split]]) & (
                pst.amax(-1) < 0.6
            )
            for what, sel in (
                ("self-directed harm (vulnerable/harmful)", self_harm[split]),
                ("reddit-cssrs Supportive (borderline)", sup),
                ("vulnerable, max posterior < 0.6", low),
            ):
                if bool(sel.any()):
                    t = decision_table(pol, pst[sel], [what] * int(sel.sum()))
                    print("\n".join(_fmt(t, strategies)))
            helped = pol.gates(pst.float()).argmax(-1) == strategies.index("help")
            vh = [
                i for i, r in enumerate(recs[split]) if r.intent == "vulnerable" and bool(helped[i])
            ]
            print(f"vulnerable rows sent to help: {len(vh)}")
            for i in vh:
                r, p = recs[split][i], pst[i]
                reading = " ".join(
                    f"{k[:3]} {float(x):.2f}" for k, x in zip(probe.labels, p, strict=True)
                )
                print(f"  - [{r.source}] {r.text[:110]!r} ({reading})")
    if args.write:
        out = args.probes / "policy.json"
        out.write_text(
            json.dumps(
                {
                    "strategies": list(cal.policy.strategies),
                    "intents": list(cal.policy.intents),
                    "payoff": [[round(v, 4) for v in row] for row in cal.policy.payoff.tolist()],
                    "guide_delta": cal.delta,
                    "guide_malicious": cal.guide_malicious,
                    "help_vulnerable": cal.help_vulnerable,
                    "chosen_by": "validation split of probe_splits(): most benign+borderline rows helped with, "
                    + (
                        f"against the gate it replaces ({args.reference}: its probe and payoff)"
                        if args.reference is not None
                        else "against the default payoff"
                    )
                    + f", vulnerable rows losing at most {args.max_vulnerable_loss} of their guide share and gaining no redirects"
                    + (
                        f", at most {args.max_vulnerable_help} vulnerable rows sent to help that the reference does not help"
                        if args.max_vulnerable_help is not None
                        else ""
                    )
                    + (
                        f", benign + borderline rows redirected rising by at most {args.max_benign_redirect_gain}"
                        if args.max_benign_redirect_gain is not None
                        else ""
                    )
                    + f" (help_vulnerable tried: {args.help_vulnerable}), self-directed harm rows gaining no redirects and no help, malicious rows helped rising by at most {args.max_malicious_help_gain} and redirected not falling (scripts/calibrate_policy.py)",
                },
                indent=1,
            )
            + "\n"
        )
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
