"""Gain sweep of a pack's low-rank actions on validation prompts: efficacy vs coherence.

Each strategy's intervention (``<dir>/<strategy>-lowrank.safetensors``) is applied ungated at
each gain to validation prompts of the intent it serves ("guide": vulnerable, "redirect":
malicious), exactly as ``train-plan`` chooses a gain (:func:`select_gain`: judged verdicts,
median reply perplexity under the unsteered model, repetition loops), so gains outside the
trained recipe's grid can be read side by side. Replies are kept in the JSON output; replies to
malicious prompts are data, read them, do not publish them.

    python scripts/gain_sweep.py runs/gain_sweep.json --gains 0.5 0.7 0.85 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import oyster_steer as osteer
from oyster_steer.data import load_all
from oyster_steer.reproduce._plan_training import _sample, select_gain
from oyster_steer.vectors import load_intervention

POPULATIONS = {"guide": "vulnerable", "redirect": "malicious"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="JSON file: rows per gain, with replies")
    p.add_argument("--pack-dir", type=Path, default=Path("vectors/smollm2-135m-instruct"))
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--gains", type=float, nargs="+", default=[0.5, 0.7, 0.85, 1.0])
    p.add_argument("--n", type=int, default=16, help="validation prompts per strategy")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = osteer.load_model()
    val = load_all(data_dir=args.data).split("validation")
    out = {}
    for strategy, intent in POPULATIONS.items():
        iv = load_intervention(args.pack_dir / f"{strategy}-lowrank.safetensors", model)
        records = _sample(model, val, intent, args.n, 1, 96)
        gain, rows = select_gain(
            model, iv, records, args.gains, log=lambda s, st=strategy: print(st, s, flush=True)
        )
        out[strategy] = {"chosen": gain, "rows": rows, "prompts": [r.text for r in records]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
