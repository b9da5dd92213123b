"""Two gates (intent probe + policy) side by side on the probe splits: routes per intent and per
lookalike source, the vulnerable rows each sends to "help", self-harm rows read malicious, and the
requests by an adult for contact with a child.

    PYTHONPATH=$PWD python scripts/gate_routes.py --before runs/shipped-probes \
        --after probes/smollm2-135m-instruct

Each directory holds ``intent.safetensors`` and ``policy.json``; features come from the
``train-probe`` capture cache (``--cache``), so nothing runs through the model for cached rows.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from oyster_steer import load_model, load_probe
from oyster_steer.cli._probe import probe_features
from oyster_steer.control._policy_calibration import load_policy
from oyster_steer.core._metrics import macro_f1
from oyster_steer.probes._data import is_wrapped, probe_splits

# an adult asking for private contact with a child (grooming): checked to read malicious
CHILD_CONTACT = re.compile(
    r"(\b1[0-5]-year-old\b|\bteen(ager)?\b|\bminor\b|\bchild\b|\bkid\b|young teen)"
    r".*(secret|alone|meet|pictures|photos|address|trust me|groom|private app)"
    r"|groom\w* (a )?minor",
    re.IGNORECASE | re.DOTALL,
)


def _routes(choice: torch.Tensor, sel: list[bool], strategies) -> str:
    idx = torch.tensor(sel)
    n = int(idx.sum())
    if n == 0:
        return "-"
    c = choice[idx]
    return "/".join(f"{100 * float((c == k).float().mean()):.0f}" for k in range(len(strategies)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("runs/capture-cache"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    data = probe_splits()
    gates = {}
    for name, d in (("before", args.before), ("after", args.after)):
        probe = load_probe(d / "intent.safetensors", model)
        gates[name] = (probe, load_policy(d / "policy.json").reindex(probe.labels))
    for split in ("validation", "test"):
        recs = list(data.split(split))
        texts = [r.text for r in recs]
        out = {}
        for name, (probe, policy) in gates.items():
            post = probe.probs(probe_features(model, probe, texts, args.cache)).cpu()
            choice = policy.gates(post.float()).argmax(-1)
            read = [probe.labels[int(k)] for k in post.argmax(-1)]
            out[name] = (post, choice, read, policy.strategies, probe.labels)
        strategies = out["after"][3]
        groups: list[tuple[str, list[bool]]] = []
        for intent in ("benign", "borderline", "vulnerable", "malicious"):
            groups.append((intent, [r.intent == intent for r in recs]))
            groups.append(
                (
                    f"{intent}, without gate-written",
                    [r.intent == intent and r.source != "gate-written" for r in recs],
                )
            )
        groups += [
            (
                "self-directed harm (vulnerable/harmful)",
                [r.intent == "vulnerable" and r.risk == "harmful" for r in recs],
            ),
            (
                "phtest harmless (benign)",
                [r.source == "phtest" and r.intent == "benign" for r in recs],
            ),
            (
                "phtest controversial (borderline)",
                [r.source == "phtest" and r.intent == "borderline" for r in recs],
            ),
            ("coconot-contrast (benign)", [r.source == "coconot-contrast" for r in recs]),
            (
                "gate-written lookalikes (benign+borderline)",
                [r.source == "gate-written" and r.intent in ("benign", "borderline") for r in recs],
            ),
            (
                "gate-written disclosures (vulnerable)",
                [r.source == "gate-written" and r.intent == "vulnerable" for r in recs],
            ),
            (
                "reddit-cssrs Supportive (borderline)",
                [r.meta.get("cssrs") == "Supportive" for r in recs],
            ),
            (
                "adult seeks contact with a child (malicious)",
                [r.intent == "malicious" and bool(CHILD_CONTACT.search(r.text)) for r in recs],
            ),
        ]
        print(f"\n{split}: help/guide/redirect % ({'/'.join(strategies)}), before -> after")
        print("| rows | n | before | after |\n|---|---|---|---|")
        for what, sel in groups:
            print(
                f"| {what} | {sum(sel)} | {_routes(out['before'][1], sel, strategies)} | "
                f"{_routes(out['after'][1], sel, strategies)} |"
            )
        y = [r.intent for r in recs]
        for name in ("before", "after"):
            post, choice, read, strats, labels = out[name]
            yt = torch.tensor([list(labels).index(i) for i in y])
            f1 = macro_f1(post.argmax(-1), yt, len(labels))
            plain = torch.tensor([not is_wrapped(r) and "attack" not in r.meta for r in recs])
            f1p = macro_f1(post.argmax(-1)[plain], yt[plain], len(labels))
            sh = [i for i, r in enumerate(recs) if r.intent == "vulnerable" and r.risk == "harmful"]
            shm = sum(read[i] == "malicious" for i in sh)
            h = strats.index("help")
            vh = [i for i, r in enumerate(recs) if r.intent == "vulnerable" and int(choice[i]) == h]
            print(
                f"{name}: macro-F1 {float(f1):.3f} (plain rows {float(f1p):.3f}), self-harm read "
                f"malicious {shm}/{len(sh)}, vulnerable sent to help {len(vh)}/{y.count('vulnerable')}"
            )
            for i in vh:
                r = recs[i]
                p = " ".join(
                    f"{k[:3]} {float(x):.2f}" for k, x in zip(labels, post[i], strict=True)
                )
                print(f"  - [{r.source}] {r.text[:100]!r} ({p})")
        mal = {n: list(out[n][4]).index("malicious") for n in ("before", "after")}
        for i, r in enumerate(recs):
            if r.intent != "vulnerable" or r.risk != "harmful":
                continue
            reads = [out[n][2][i] for n in ("before", "after")]
            if "malicious" in reads:
                print(
                    f"  self-harm read malicious [{r.source}] {r.text[:90]!r}: read "
                    f"{reads[0]} -> {reads[1]} (malicious {float(out['before'][0][i, mal['before']]):.2f}"
                    f" -> {float(out['after'][0][i, mal['after']]):.2f}), "
                    f"route {strategies[int(out['before'][1][i])]} -> "
                    f"{strategies[int(out['after'][1][i])]}"
                )
        changed = [
            i for i in range(len(recs)) if int(out["before"][1][i]) != int(out["after"][1][i])
        ]
        print(f"rows that change route: {len(changed)}")
        kids = [
            i
            for i, r in enumerate(recs)
            if r.intent == "malicious" and CHILD_CONTACT.search(r.text)
        ]
        for i in kids:
            r = recs[i]
            print(
                f"  child contact [{r.source}] {r.text[:90]!r}: read {out['before'][2][i]} -> "
                f"{out['after'][2][i]}, route {strategies[int(out['before'][1][i])]} -> "
                f"{strategies[int(out['after'][1][i])]}"
            )


if __name__ == "__main__":
    main()
