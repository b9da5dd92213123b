"""``python -m oyster_steer.serving.vllm.run SPEC.json OUT.json``: greedy generation with vLLM.

Run with the vLLM venv's python (``.venv-vllm/bin/python``). The spec is JSON, one job or a list
of jobs run one after the other in this process::

    {"model": "exported/dir", "prompts": [[token ids], ...], "max_tokens": 16,
     "engine": {"max_num_batched_tokens": 64, ...}, "repeat": 1, "env": {"OYSTER_STEER_PLAN": "off"}}

Every prompt of a job is submitted at once (vLLM batches them continuously); the output JSON has,
per job, the generated token ids and the engine's request id of each prompt, the number of
preemptions, and per repeat the wall time and generated tokens per second. The tests and
``benchmarks/vllm_throughput.py`` use it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

ENGINE_DEFAULTS: dict[str, Any] = {
    "dtype": "float32",
    "max_model_len": 512,
    "enforce_eager": True,
    "seed": 0,
    "kv_cache_memory_bytes": 256 << 20,  # not a fraction of the (shared) machine's RAM
}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    from vllm import LLM, SamplingParams

    saved = {k: os.environ.get(k) for k in job.get("env", {})}
    os.environ.update(job.get("env", {}))
    try:
        t0 = time.perf_counter()
        llm = LLM(model=job["model"], **{**ENGINE_DEFAULTS, **job.get("engine", {})})
        load_s = time.perf_counter() - t0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    params = SamplingParams(
        temperature=0.0, max_tokens=int(job.get("max_tokens", 16)), ignore_eos=True
    )
    prompts = [{"prompt_token_ids": [int(t) for t in p]} for p in job["prompts"]]
    runs = []
    for _ in range(int(job.get("repeat", 1))):
        t0 = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        sec = time.perf_counter() - t0
        n = sum(len(o.outputs[0].token_ids) for o in outs)
        runs.append({"seconds": sec, "generated_tokens": n, "tokens_per_s": n / sec})
    preemptions = None
    try:
        metrics = {m.name: m for m in llm.get_metrics()}
        if "vllm:num_preemptions" in metrics:
            preemptions = int(metrics["vllm:num_preemptions"].value)
    except Exception:  # noqa: BLE001 - metrics are informative only
        pass
    result = {
        "load_seconds": load_s,
        "tokens": [list(o.outputs[0].token_ids) for o in outs],
        "request_ids": [o.request_id for o in outs],
        "preemptions": preemptions,
        "runs": runs,
    }
    del llm
    gc.collect()
    return result


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path) as fh:
        spec = json.load(fh)
    jobs = spec if isinstance(spec, list) else [spec]
    results = [run_job(job) for job in jobs]
    with open(out_path, "w") as fh:
        json.dump(results if isinstance(spec, list) else results[0], fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
