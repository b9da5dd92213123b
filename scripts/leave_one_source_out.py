"""Leave-one-source-out report for the risk and intent probes (issue 15 item 5), as markdown.

Reads the probe splits' activations from the ``train-probe`` capture cache (every layer's last
token; captured if missing), fits the intent probe at the shipped intent probe's site and the
risk probe at the shipped risk probe's site once per held-out source (``probes._loso``: train and
validation rows of every other source; the held-out source's rows of every split are scored),
and prints one table row per source and label next to the shipped probe on that source's
test-split rows (trained with the source in).

    PYTHONPATH=$PWD python scripts/leave_one_source_out.py [--out runs/loso.md]

CPU: a logistic-regression fit per source and task on cached activations, one thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from oyster_steer import load_model, load_probe
from oyster_steer.activations._cache import cached_capture
from oyster_steer.cli._probe import default_sweep_sites
from oyster_steer.probes._data import probe_splits
from oyster_steer.probes._loso import leave_one_source_out
from oyster_steer.probes._sweep import task_labels


def _pct(v: float | None) -> str:
    return "" if v is None or v != v else f"{100 * v:.0f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probes", type=Path, default=Path("probes/smollm2-135m-instruct"))
    ap.add_argument("--cache", type=Path, default=Path("runs/capture-cache"))
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    model = load_model()
    risk = load_probe(args.probes / "risk.safetensors")
    intent = load_probe(args.probes / "intent.safetensors")
    data = probe_splits()
    splits = {s: data.split(s) for s in ("train", "validation", "test")}
    acts = {
        s: cached_capture(
            model, ps.texts, default_sweep_sites(model.n_layers), root=args.cache, progress=False
        )
        for s, ps in splits.items()
    }
    out: dict[str, dict[tuple[str, str], dict]] = {}
    for task, probe in (("intent", intent), ("risk", risk)):
        site = probe.site.name
        feats = {s: a[site].float() for s, a in acts.items()}
        labels = {s: task_labels(task, ps)[0] for s, ps in splits.items()}
        names = list(task_labels(task, splits["train"][:1])[1].labels)
        rows = leave_one_source_out(
            feats,
            splits,
            labels,
            names,
            site=site,
            target_fpr=0.05 if task == "risk" else None,
            by=lambda r: r.intent,
        )
        # the shipped probe (every source in training) on the same source's test rows
        p = probe.probs(feats["test"].to(probe.device)).cpu()
        for r in rows:
            sel = torch.tensor(
                [x.source == r["source"] and x.intent == r["label"] for x in splits["test"]]
            )
            if bool(sel.any()):
                y = labels["test"][sel]
                r["shipped_n"] = int(sel.sum())
                r["shipped_read_as_label"] = float((p[sel].argmax(-1) == y).float().mean())
                r["shipped_read_malicious"] = (
                    float((p[sel].argmax(-1) == names.index("malicious")).float().mean())
                    if task == "intent"
                    else None
                )
                if task == "risk" and probe.threshold is not None:
                    r["shipped_flag"] = float((p[sel, 1] > probe.threshold).float().mean())
            out.setdefault(task, {})[(r["source"], r["label"])] = r
    lines = [
        "| held-out source | intent | n | held out: read as intent | read malicious | risk flag "
        "| shipped, test rows: n | read as intent | read malicious | risk flag |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in sorted(out["intent"].items()):
        rr = out["risk"].get(key, {})
        lines.append(
            f"| {key[0]} | {key[1]} | {r['n']} | {_pct(r['read_as_label'])} | "
            f"{_pct(r['read_as']['malicious'])} | {_pct(rr.get('flag'))} | {r.get('shipped_n', 0)} | "
            f"{_pct(r.get('shipped_read_as_label'))} | {_pct(r.get('shipped_read_malicious'))} | "
            f"{_pct(rr.get('shipped_flag'))} |"
        )
    text = "\n".join(lines)
    print(text)
    print(f"\n({time.time() - start:.0f} s)")
    if args.out:
        args.out.write_text(text + "\n")
        (args.out.with_suffix(".json")).write_text(
            json.dumps({t: list(d.values()) for t, d in out.items()}, indent=1)
        )


if __name__ == "__main__":
    main()
