"""Where and how the gate reads (issue 15 item 3): last token vs pooled prompt features, a few layers.

One capture pass per split over the probe splits (``probe_splits()``, shift data included)
reduces every prompt's real tokens at each layer to four features: ``last`` (the last prompt
token, what the shipped hook reads), ``window4`` (mean of the last 4 prompt tokens: the control
plan's ``read="window"``), ``mean`` (mean over every chat-formatted prompt token: ``read="window"``
with a window as long as the prompt) and ``max`` (element-wise max over the prompt tokens: no
read mode computes it). Then the same logistic-regression probe (L2 and temperature chosen on
validation) per (pooling, layer) and task; prints validation and test intent macro-F1, risk AUROC
and a few shift rates, and writes them as JSON.

    PYTHONPATH=$PWD python scripts/probe_pooling.py --layers 8 12 16 20 24 --out runs/pooling

CPU: one thread (``torch.set_num_threads(1)``); about 15 minutes for ~10k prompts on SmolLM2-135M.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from oyster_steer import load_model
from oyster_steer.activations import capture
from oyster_steer.core._metrics import summary
from oyster_steer.probes._data import is_wrapped, probe_splits
from oyster_steer.probes._sweep import task_labels
from oyster_steer.probes._train import train_probe

POOLS = ("last", "window4", "mean", "max")


def _pooled(model, texts, layers, batch_size, chunk=64):
    """{pool: {layer: (N, d) float32}} for ``texts``."""
    sites = [f"blocks.{k}.hook_resid_post" for k in layers]
    out = {p: {k: [] for k in layers} for p in POOLS}
    for start in range(0, len(texts), chunk):
        acts = capture(
            model,
            texts[start : start + chunk],
            sites,
            pool="all",
            batch_size=batch_size,
            progress=False,
        )
        off = acts.token_offsets.tolist()
        for k, site in zip(layers, sites, strict=True):
            x = acts[site].float()
            for i in range(len(off) - 1):
                rows = x[off[i] : off[i + 1]]  # (T_i, d)
                out["last"][k].append(rows[-1].clone())
                out["window4"][k].append(rows[-4:].mean(0).clone())
                out["mean"][k].append(rows.mean(0).clone())
                out["max"][k].append(rows.amax(0).clone())
    return {p: {k: torch.stack(v) for k, v in d.items()} for p, d in out.items()}


def _shift_rates(task, probs, thr, ps, names):
    """Shift rates on one split: jailbreak recall and wrapped-benign flags (risk), vulnerable read
    malicious and benign/borderline read vulnerable (intent)."""

    def rate(keep, hit):
        sel = torch.tensor([bool(keep(r)) for r in ps])
        return round(float(hit[sel].float().mean()), 3) if bool(sel.any()) else float("nan")

    attacked = lambda r: "attack" in r.meta or is_wrapped(r)  # noqa: E731
    if task == "risk":
        flag = probs[:, 1] > thr
        return {
            "jailbreak_recall": rate(lambda r: r.intent == "malicious" and attacked(r), flag),
            "wrapped_benign_flag": rate(lambda r: r.intent == "benign" and attacked(r), flag),
            "lookalike_flag": rate(
                lambda r: r.source in ("phtest", "coconot-contrast") and r.intent == "benign", flag
            ),
        }
    pred = probs.argmax(-1)
    return {
        "vulnerable_as_malicious": rate(
            lambda r: r.intent == "vulnerable", pred == names.index("malicious")
        ),
        "benign_borderline_as_vulnerable": rate(
            lambda r: r.intent in ("benign", "borderline"), pred == names.index("vulnerable")
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, nargs="+", default=[8, 12, 16, 20, 24])
    ap.add_argument("--out", type=Path, default=Path("runs/pooling"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--train-limit",
        type=int,
        default=None,
        help="fit on this many hash-chosen train prompts (default: all); the same for every pooling",
    )
    ap.add_argument("--splits", nargs="+", default=["validation", "test"], help="splits scored")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    model = load_model()
    data = probe_splits()
    splits = {s: data.split(s) for s in ["train", *args.splits]}
    if args.train_limit is not None:
        from oyster_steer.data._records import unit_hash

        keep = sorted(splits["train"], key=lambda r: unit_hash(f"pool:{r.id}"))[: args.train_limit]
        ids = {r.id for r in keep}
        splits["train"] = splits["train"].filter(predicate=lambda r: r.id in ids)
    feats_path = args.out / "features.pt"
    if feats_path.is_file():
        feats = torch.load(feats_path)
    else:
        feats = {
            s: _pooled(model, ps.texts, args.layers, args.batch_size) for s, ps in splits.items()
        }
        torch.save(feats, feats_path)
    captured = time.time() - start
    results = []
    for task in ("intent", "risk"):
        labels = {s: task_labels(task, ps)[0] for s, ps in splits.items()}
        names = task_labels(task, splits["train"][:1])[1].labels
        for pool in POOLS:
            for k in args.layers:
                probe = train_probe(
                    feats["train"][pool][k].float(),
                    labels["train"],
                    site=f"blocks.{k}.hook_resid_post",
                    label_names=names,
                    val=(feats["validation"][pool][k].float(), labels["validation"]),
                    target_fpr=0.05 if task == "risk" else None,
                )
                row = {"task": task, "pool": pool, "layer": k}
                for s in args.splits:
                    p = probe.probs(feats[s][pool][k].float())
                    m = summary(p, labels[s])
                    row[s] = round(m["macro_f1"] if task == "intent" else m["auroc"], 4)
                    row[f"{s}_shift"] = _shift_rates(
                        task, p, probe.threshold or 0.5, splits[s], list(names)
                    )
                results.append(row)
                print(json.dumps(row), flush=True)
    (args.out / "pooling.json").write_text(json.dumps(results, indent=1))
    print(f"capture {captured:.0f} s, total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
