"""The intent probe on the shipped read (last token + prompt mean at layer 12) with last-token
features of earlier layers side by side: validation and test macro-F1 and self-harm rows read
malicious, from the ``train-probe`` capture cache (a diagnostic for issue 15's "several layers"
lever; the library's probes read one site, so such a probe cannot ship as it is).

    PYTHONPATH=$PWD python scripts/gate_extra_layers.py --layers 8 10

Each combination of ``--layers`` (none, each one alone, all together) trains one probe with
``train_probe``'s defaults on the concatenated features (L2 and temperature chosen on
validation). Rows with source ``gate-written`` are left out of the scores (not of training), so
the numbers compare across versions of the hand-written rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from oyster_steer import load_model, load_probe
from oyster_steer.activations._cache import cached_capture
from oyster_steer.cli._probe import probe_features
from oyster_steer.control import Policy
from oyster_steer.control._policy_calibration import HELP_VULNERABLE, calibrate_guide, load_policy
from oyster_steer.core._metrics import macro_f1
from oyster_steer.probes._data import probe_splits
from oyster_steer.probes._sweep import task_labels
from oyster_steer.probes._train import train_probe

SITE = "blocks.{}.hook_resid_post"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, nargs="+", default=[8, 10])
    ap.add_argument("--read-layer", type=int, default=12)
    ap.add_argument("--cache", type=Path, default=Path("runs/capture-cache"))
    ap.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="also calibrate a policy per probe as scripts/calibrate_policy.py --reference DIR "
        "--max-vulnerable-help 0 does and print its routes next to the reference gate's",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    data = probe_splits()
    splits = {n: data.split(n) for n in ("train", "validation", "test")}
    read = SITE.format(args.read_layer)
    extra = [SITE.format(k) for k in args.layers]
    last = {
        n: cached_capture(model, ps.texts, extra, pool="last", root=args.cache, progress=False)
        for n, ps in splits.items()
    }
    both = {
        n: cached_capture(
            model, ps.texts, [read], pool="last+mean", root=args.cache, progress=False
        )
        for n, ps in splits.items()
    }
    y = {n: task_labels("intent", ps)[0] for n, ps in splits.items()}
    labels = task_labels("intent", splits["train"][:1])[1].labels
    mal = list(labels).index("malicious")

    def feats(n: str, layers: tuple[int, ...]) -> torch.Tensor:
        parts = [both[n][read].float()] + [last[n][SITE.format(k)].float() for k in layers]
        return torch.cat(parts, -1)

    ref = None
    if args.reference is not None:
        ref_probe = load_probe(args.reference / "intent.safetensors", model)
        ref_policy = load_policy(args.reference / "policy.json").reindex(labels)
        order = [list(ref_probe.labels).index(k) for k in labels]
        ref = {
            n: ref_probe.probs(probe_features(model, ref_probe, splits[n].texts, args.cache)).cpu()[
                :, order
            ]
            for n in ("validation", "test")
        }
        print("reference routes:", _routes(ref_policy, ref, splits))
    combos: list[tuple[int, ...]] = [(), *[(k,) for k in args.layers]]
    if len(args.layers) > 1:
        combos.append(tuple(args.layers))
    print(
        "| features | validation macro-F1 | self-harm read malicious | test macro-F1 | self-harm read malicious |"
    )
    print("|---|---|---|---|---|")
    for layers in combos:
        probe = train_probe(
            feats("train", layers),
            y["train"],
            site=read,
            label_names=labels,
            val=(feats("validation", layers), y["validation"]),
        )
        cells = []
        for n in ("validation", "test"):
            recs = list(splits[n])
            keep = torch.tensor([r.source != "gate-written" for r in recs])
            pred = probe.probs(feats(n, layers)).argmax(-1).cpu()
            f1 = float(macro_f1(pred[keep], y[n][keep], len(labels)))
            sh = [
                i
                for i, r in enumerate(recs)
                if r.intent == "vulnerable" and r.risk == "harmful" and bool(keep[i])
            ]
            cells += [f"{f1:.3f}", f"{sum(int(pred[i]) == mal for i in sh)}/{len(sh)}"]
        name = f"last+mean@{args.read_layer}" + "".join(f" + last@{k}" for k in layers)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
        if ref is not None:
            post = {n: probe.probs(feats(n, layers)).cpu() for n in ("validation", "test")}
            val = list(splits["validation"])
            cal = calibrate_guide(
                post["validation"],
                [r.intent for r in val],
                base=Policy().reindex(labels),
                self_harm=torch.tensor(
                    [r.intent == "vulnerable" and r.risk == "harmful" for r in val]
                ),
                reference=(ref_policy, ref["validation"]),
                help_vulnerable=HELP_VULNERABLE,
                max_vulnerable_help=0,
            )
            print(
                f"  calibrated (delta {cal.delta}, guide_malicious {cal.guide_malicious}, "
                f"help_vulnerable {cal.help_vulnerable}):",
                _routes(cal.policy, post, splits),
                flush=True,
            )


def _routes(policy: Policy, post: dict[str, torch.Tensor], splits: dict) -> str:
    """help/guide/redirect counts per intent (rows without gate-written), validation; test."""
    out = []
    for n in ("validation", "test"):
        choice = policy.gates(post[n].float()).argmax(-1)
        cells = []
        for intent in ("benign", "borderline", "vulnerable", "malicious"):
            idx = [
                i
                for i, r in enumerate(splits[n])
                if r.intent == intent and r.source != "gate-written"
            ]
            counts = [sum(int(choice[i]) == k for i in idx) for k in range(len(policy.strategies))]
            cells.append(f"{intent[:4]} {'/'.join(map(str, counts))}")
        out.append(f"{n} " + ", ".join(cells))
    return "; ".join(out)


if __name__ == "__main__":
    main()
