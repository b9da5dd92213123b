"""What a pack's low-rank actions do applied ungated (a mis-route) to validation prompts.

    python scripts/misroute_check.py DIR OUT.json [STRATEGY ...]

DIR holds ``{redirect,guide}-lowrank.safetensors`` (e.g. vectors/smollm2-135m-instruct, or an
older version from ``git show``). For each strategy, 8 validation prompts per other intent
(benign, borderline; malicious too for "guide"), as in ``oyster-steer train-plan``: mean
per-token KL(unsteered || steered) on the unsteered greedy reply, and judged verdicts of the
greedy replies before and after (:func:`oyster_steer.reproduce._plan_training.misroute_check`).
"""

import json
import sys

import torch

import oyster_steer as osteer
from oyster_steer.data import load_all
from oyster_steer.reproduce._plan_training import PlanTrainingConfig, _sample, misroute_check
from oyster_steer.vectors._intervention import load_intervention

torch.set_num_threads(1)
folder, out = sys.argv[1], sys.argv[2]
model = osteer.load_model()
cfg = PlanTrainingConfig()
val = load_all().split("validation")
report = {}
for strategy in sys.argv[3:] or ("guide", "redirect"):
    iv = load_intervention(f"{folder}/{strategy}-lowrank.safetensors", model)
    gain = float(iv.meta.get("gain", 1.0))
    others = ("benign", "borderline") + (("malicious",) if strategy == "guide" else ())
    check = [
        r
        for o in others
        for r in _sample(model, val, o, cfg.n_misroute, cfg.seed + 2, cfg.max_prompt_tokens)
    ]
    report[strategy] = found = misroute_check(model, iv, gain, check)
    for o, row in found.items():
        print(
            f"{strategy} forced on {o}: KL {row['kl']:.3f}, changed {row['changed']:.0%}, "
            f"{row['unsteered']} -> {row['steered']}",
            flush=True,
        )
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
