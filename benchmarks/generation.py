"""Greedy generation as ``oyster-steer eval`` does it, against length-sorted, static-cache and compiled variants.

Every variant answers the same prompts (a mix of the four intents of the starter set, chat
formatted, greedy, ``--max-new-tokens``). Variants run interleaved, round after round, so load on
a shared machine hits them alike; the table reports median CPU and wall seconds, the speed
relative to (a), and how many replies are identical to (a)'s.

    python benchmarks/generation.py                 # SmolLM2-135M-Instruct, 48 prompts
    python benchmarks/generation.py --model tiny    # tiny random llama (seconds)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# inductor compiles in this process (no worker pool): its CPU time is then counted, and a shared
# 2-core machine gets no extra processes
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture import load, machine  # noqa: E402


def variants(
    model: Any, prompts: list[str], new: int, batch: int
) -> dict[str, Callable[[], list[str]]]:
    from oyster_steer.eval._generate import generate_replies

    def record_order() -> list[str]:  # what eval did: chunks of `batch` in record order
        out: list[str] = []
        for start in range(0, len(prompts), batch):
            out += generate_replies(
                model, prompts[start : start + batch], max_new_tokens=new, batch_size=batch
            )
        return out

    def sorted_(size: int, **kw: Any) -> Callable[[], list[str]]:
        return lambda: generate_replies(
            model, prompts, max_new_tokens=new, batch_size=size, generate_kwargs=kw or None
        )

    return {
        f"(a) record order, batches of {batch}": record_order,
        f"(b) length-sorted, batches of {batch}": sorted_(batch),
        f"(c) length-sorted, batches of {2 * batch}": sorted_(2 * batch),
        f"(d) length-sorted, batches of {batch}, static cache": sorted_(
            batch, cache_implementation="static"
        ),
        # transformers compiles the decode step with a static cache only on accelerators unless
        # the compile config opts in; the first call of each new shape pays the compilation
        f"(e) length-sorted, batches of {batch}, static cache, compiled step": sorted_(
            batch, cache_implementation="static", compile_config=_compile_config()
        ),
    }


def _compile_config() -> Any:
    from transformers import CompileConfig

    config = CompileConfig(mode="default")  # "reduce-overhead" is CUDA graphs
    config._compile_all_devices = True  # transformers' own opt-in to compile on the CPU
    return config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2", choices=("smollm2", "tiny"))
    p.add_argument("--prompts", type=int, default=48)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated variant letters to run (e.g. b,c); the first is the baseline",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from oyster_steer.data import load_starter

    prompts = load_starter().sample(args.prompts // 4 + 1, seed=0).texts[: args.prompts]
    model = load(args.model, "hf")
    fns = variants(model, prompts, args.max_new_tokens, args.batch_size)
    if args.only:
        keep = [f"({x.strip()})" for x in args.only.split(",")]
        fns = {k: fns[k] for x in keep for k in fns if k.startswith(x)}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    replies: dict[str, list[str]] = {}
    for round_ in range(args.repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            replies[name] = fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
        print(f"round {round_ + 1}/{args.repeats} done", file=sys.stderr)
    base = next(iter(fns))
    med = lambda k, i: statistics.median(t[i] for t in times[k])  # noqa: E731
    rows = [
        f"| variant | CPU s (median) | speed vs {base[:3]}, CPU | wall s (median) | speed vs {base[:3]}, wall | replies identical to {base[:3]} | CPU s per round |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for k in fns:
        same = sum(a == b for a, b in zip(replies[base], replies[k], strict=True))
        rows.append(
            f"| {k} | {med(k, 1):.1f} | {med(base, 1) / med(k, 1):.2f}x | {med(k, 0):.1f} | "
            f"{med(base, 0) / med(k, 0):.2f}x | {same}/{len(prompts)} | "
            + ", ".join(f"{t[1]:.1f}" for t in times[k])
            + " |"
        )
    command = f"python benchmarks/generation.py --prompts {args.prompts} --max-new-tokens {args.max_new_tokens} --batch-size {args.batch_size} --repeats {args.repeats}"
    command += f" --threads {args.threads}" if args.threads else ""
    command += " --model tiny" if args.model == "tiny" else ""
    command += f" --only {args.only}" if args.only else ""
    print(
        f"{len(prompts)} starter prompts (all four intents), greedy, {args.max_new_tokens} new tokens, "
        f"{model.name}, median of {args.repeats} interleaved rounds (no warm-up round).\n\n"
        f"Machine: {machine()}.\n\nCommand: `{command}`\n\n" + "\n".join(rows)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
