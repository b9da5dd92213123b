"""Intent probes side by side on the probe splits: macro-F1, recall per intent and self-directed
harm rows (vulnerable/harmful) read malicious, each probe on its own features (its pool, from the
``train-probe`` capture cache).

    PYTHONPATH=$PWD python scripts/compare_intent_probes.py runs/shipped-probes/intent.safetensors probes/smollm2-135m-instruct/intent.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from oyster_steer import load_model, load_probe
from oyster_steer.cli._probe import probe_features
from oyster_steer.probes._data import probe_splits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("probes", type=Path, nargs="+", help="intent probe files")
    ap.add_argument("--cache", type=Path, default=Path("runs/capture-cache"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, data = load_model(), probe_splits()
    for path in args.probes:
        probe = load_probe(path, model)
        for split in ("validation", "test"):
            recs = list(data.split(split))
            x = probe_features(model, probe, [r.text for r in recs], args.cache)
            pred = [probe.labels[i] for i in probe.probs(x).argmax(-1).tolist()]
            gold = [r.intent for r in recs]
            f1, recall = [], {}
            for c in probe.labels:
                tp = sum(p == c and g == c for p, g in zip(pred, gold, strict=True))
                fp = sum(p == c and g != c for p, g in zip(pred, gold, strict=True))
                fn = sum(p != c and g == c for p, g in zip(pred, gold, strict=True))
                f1.append(2 * tp / max(2 * tp + fp + fn, 1))
                recall[c] = round(tp / max(tp + fn, 1), 2)
            harm = [
                i for i, r in enumerate(recs) if r.intent == "vulnerable" and r.risk == "harmful"
            ]
            bad = sum(pred[i] == "malicious" for i in harm)
            print(
                f"{path} ({probe.pool}) {split}: macro-F1 {sum(f1) / len(f1):.3f}, recall {recall}, "
                f"self-harm read malicious {bad}/{len(harm)}"
            )


if __name__ == "__main__":
    main()
