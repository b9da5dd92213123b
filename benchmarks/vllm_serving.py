"""vLLM with the probe-gated plan: same decisions and tokens as the library, and its cost.

Exports the default model (SmolLM2-135M-Instruct) with the shipped control pack
(``vectors/<model>/control.safetensors``, ``allow_conditional=True``), then, on the same
four-intent starter prompts submitted at once:

1. the library: ``patch(exported, load_plan(<export>/control.safetensors))``; decisions of the
   left-padded batch (``handle.decisions()``) and greedy tokens of each prompt alone;
2. vLLM (``.venv-vllm``, one subprocess, two engines one after the other, both with whole-prompt
   prefill and no prefix caching, the library's semantics exactly): (a) with the plan, (b) without
   it (``OYSTER_STEER_PLAN=off``); each generates ``--repeat`` times: tokens/s, and their ratio.

Run from the repository root with the main venv: ``python benchmarks/vllm_serving.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-intent", type=int, default=4, help="starter prompts per intent")
    ap.add_argument("--new-tokens", type=int, default=32, help="greedy tokens per prompt")
    ap.add_argument("--repeat", type=int, default=3, help="generate rounds per engine (b, c)")
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    ap.add_argument("--work", type=Path, default=None, help="work dir (an export there is reused)")
    ap.add_argument(
        "--plan",
        type=Path,
        default=None,
        help="a control pack to serve instead of the shipped one (e.g. a read='last+mean' pack)",
    )
    args = ap.parse_args()

    import oyster_steer as osteer
    from oyster_steer.backends import get_backend
    from oyster_steer.data import load_starter

    work = args.work or Path(tempfile.mkdtemp(prefix="osteer-vllm-"))
    work.mkdir(parents=True, exist_ok=True)
    model = osteer.load_model()
    plan = osteer.load_plan(
        args.plan or ROOT / "vectors" / model.name / "control.safetensors", model
    )
    export = work / "export"
    if not (export / "oyster_steer_manifest.json").is_file():
        osteer.export_patched(model, plan, export, allow_conditional=True)
    exported = osteer.load_model(str(export), device="cpu")
    pack = osteer.load_plan(export / "control.safetensors", exported)

    starter = load_starter()
    prompts, intents = [], []
    for intent in ("benign", "borderline", "vulnerable", "malicious"):
        rows = [r for r in starter if r.intent == intent][: args.per_intent]
        prompts += [r.text for r in rows]
        intents += [intent] * len(rows)
    ids = []
    for p in prompts:
        t = exported.tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True
        )
        ids.append([int(x) for x in (t["input_ids"] if hasattr(t, "keys") else t)])

    backend = get_backend("hf")
    with torch.no_grad(), osteer.patch(exported, pack) as handle:
        batch, mask = exported.encode(prompts)
        backend.forward(exported, batch, mask)
        lib_rows = handle.decisions().rows()
        lib_tokens = []
        for p in ids:
            x = torch.tensor([p])
            out = backend.generate(exported, x, torch.ones_like(x), max_new_tokens=args.new_tokens)
            lib_tokens.append(out[0, len(p) :].tolist())

    base = {"model": str(export), "prompts": ids, "max_tokens": args.new_tokens}
    exact = {
        "enable_chunked_prefill": False,
        "enable_prefix_caching": False,
        "max_num_batched_tokens": 4096,
    }
    jobs = [  # plan on, then off: the same engine settings, one process
        {
            **base,
            "engine": exact,
            "repeat": args.repeat,
            "env": {"OYSTER_STEER_DECISIONS": str(work / "a.jsonl")},
        },
        {**base, "engine": exact, "repeat": args.repeat, "env": {"OYSTER_STEER_PLAN": "off"}},
    ]
    (work / "spec.json").write_text(json.dumps(jobs))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with open(work / "vllm.log", "w") as log:
        subprocess.run(
            [
                str(ROOT / ".venv-vllm" / "bin" / "python"),
                "-m",
                "oyster_steer.serving.vllm.run",
                str(work / "spec.json"),
                str(work / "out.json"),
            ],
            check=True,
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    results = json.loads((work / "out.json").read_text())
    eos = exported.tokenizer.eos_token_id

    def upto(t: list[int]) -> list[int]:
        return t[: t.index(eos) + 1] if eos in t else t

    report = {"prompts": len(ids), "new_tokens": args.new_tokens, "read": pack.read}
    for key, res, log in (("plan", results[0], "a.jsonl"),):
        dec = {}
        for line in (work / log).read_text().splitlines():
            r = json.loads(line)
            dec[r["request_id"].split("-")[0]] = r
        got = [dec[rid.split("-")[0]] for rid in res["request_ids"]]
        same_dec = sum(
            g["strategy"] == w["strategy"] and g["intent"] == w["intent"]
            for g, w in zip(got, lib_rows, strict=True)
        )
        max_p = max(
            abs(g["posterior"][k] - w[f"p_{k}"])
            for g, w in zip(got, lib_rows, strict=True)
            for k in g["posterior"]
        )
        same_tok = sum(
            t[: len(upto(w))] == upto(w) for t, w in zip(res["tokens"], lib_tokens, strict=True)
        )
        report[key] = {
            "same_decisions": same_dec,
            "max_posterior_diff": max_p,
            "same_tokens": same_tok,
            "strategies": [g["strategy"] for g in got],
        }
    on = [r["tokens_per_s"] for r in results[0]["runs"]]
    off = [r["tokens_per_s"] for r in results[1]["runs"]]
    report["throughput"] = {
        "plan_tok_s": on,
        "no_plan_tok_s": off,
        "ratio_of_medians": statistics.median(on) / statistics.median(off),
    }
    report["library_strategies"] = [r["strategy"] for r in lib_rows]
    report["intents"] = intents
    report["replies"] = {
        "library": [
            exported.tokenizer.decode(upto(t), skip_special_tokens=True) for t in lib_tokens
        ],
        "vllm": [
            exported.tokenizer.decode(t, skip_special_tokens=True) for t in results[0]["tokens"]
        ],
    }
    report["machine"] = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}"
    )
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())
