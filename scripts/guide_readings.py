"""Why a control plan sends prompts to each strategy: the intent posterior behind every route.

For the test split's ``oyster-steer eval --n-per-class N`` prompts (same sampler and seed), or for
any prompts in a text file (one per line, ``--prompts``), runs the plan's prompt pass and prints,
per intent, how many prompts each strategy got and whether p(vulnerable) or p(malicious) was the
larger reading, then every benign or borderline prompt sent to ``guide`` with its posterior.
Used for RESULTS.md ("Eighth session"): lookalikes reach "guide" through a small p(vulnerable)
(helping a vulnerable user costs 6 in the payoff) or a moderate p(malicious) (guide is the
cheaper hedge than help).

    python scripts/guide_readings.py --n-per-class 48
    python scripts/guide_readings.py --prompts my_prompts.txt
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from oyster_steer import load_model
from oyster_steer.backends import get_backend
from oyster_steer.control import load_plan, patch_plan
from oyster_steer.data import load_all

PACK = "vectors/smollm2-135m-instruct/control.safetensors"


def readings(model, plan, texts, batch_size=16):
    """(strategy, posterior) per prompt, from the plan's latched prompt-pass decisions."""
    out = []
    with torch.no_grad(), patch_plan(model, plan) as handle:
        for start in range(0, len(texts), batch_size):
            ids, mask = model.encode(texts[start : start + batch_size])
            get_backend(model.backend).forward(model, ids, mask, logits=False)
            d = handle.decisions()
            out += list(zip(d.strategy, d.posterior, strict=True))
    return out, tuple(plan.probe.labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", default=PACK)
    ap.add_argument("--n-per-class", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="data folder (default: ../shared/data if found)")
    ap.add_argument("--prompts", default=None, help="a text file, one prompt per line (no labels)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model()
    plan = load_plan(args.plan, model)
    if args.prompts:
        with open(args.prompts, encoding="utf-8") as f:
            texts = [line.strip() for line in f if line.strip()]
        intents = ["?"] * len(texts)
    else:
        data = load_all(data_dir=args.data).split("test").sample(args.n_per_class, seed=args.seed)
        texts, intents = [r.text for r in data], [r.intent for r in data]
    rows, labels = readings(model, plan, texts)
    v, m = labels.index("vulnerable"), labels.index("malicious")
    counts = Counter(
        (i, s, "p(vul) >= p(mal)" if float(p[v]) >= float(p[m]) else "p(mal) > p(vul)")
        for i, (s, p) in zip(intents, rows, strict=True)
    )
    for key in sorted(counts):
        print(*key, counts[key], sep="\t")
    print("\nguided, posterior over", ", ".join(labels))
    for i, t, (s, p) in zip(intents, texts, rows, strict=True):
        if s == "guide" and i in ("benign", "borderline", "?"):
            print(i, [round(float(x), 2) for x in p], t[:90].replace("\n", " "), sep="\t")


if __name__ == "__main__":
    main()
