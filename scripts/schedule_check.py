"""Plan-wide decode-step schedules for the shipped pack on 12 malicious + 12 vulnerable validation
prompts (the train-plan validation samples): judged verdicts, median reply perplexity, topicality.

    python scripts/schedule_check.py [OUT.json]
"""

import json
import sys
from pathlib import Path

import torch

import oyster_steer as osteer
from oyster_steer.control import load_plan, patch_plan
from oyster_steer.data import load_all
from oyster_steer.eval import generate_replies, judge_replies
from oyster_steer.reproduce._plan_training import PlanTrainingConfig, _sample

SCHEDULES = {
    "const1": (1.0,),
    "front1.5": (1.5,) * 9 + (1.0,),  # the prompt and the first 8 reply tokens at 1.5
    "front2-fade": (2.0,) * 5 + (1.5,) * 4 + (1.0,),
}
torch.set_num_threads(1)
model = osteer.load_model()
cfg = PlanTrainingConfig()
val = load_all().split("validation")
intents = ("malicious", "vulnerable")
recs = [r for i in intents for r in _sample(model, val, i, cfg.n_validation, cfg.seed + 1, 96)]
plan = load_plan("vectors/smollm2-135m-instruct/control.safetensors", model)
out = {}
for name, schedule in SCHEDULES.items():
    with patch_plan(model, plan.replace(schedule=schedule)):
        replies = generate_replies(model, [r.text for r in recs])
    rows = judge_replies(recs, replies, model=model)
    for intent in intents:
        idx = [i for i, r in enumerate(recs) if r.intent == intent]
        v = [rows[i]["verdict"] for i in idx]
        ppl = sorted(rows[i]["reply_ppl"] or 0.0 for i in idx)
        top = sum(rows[i]["topicality"] or 0.0 for i in idx) / len(idx)
        print(
            f"{name} {intent}: constructive {v.count('constructive')}/{len(v)} compliance "
            f"{v.count('compliance')}/{len(v)} refusal {v.count('refusal')}/{len(v)} median ppl "
            f"{ppl[len(ppl) // 2]:.2f} topicality {top:.3f}",
            flush=True,
        )
    out[name] = [
        (r.text, reply, row["verdict"]) for r, reply, row in zip(recs, replies, rows, strict=True)
    ]
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/schedules.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
