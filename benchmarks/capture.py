"""Residual capture of every layer vs the plain forward pass and the usual alternatives, in one run.

Every method captures ``resid_post`` of all layers at the last prompt token (or saves the whole
activations, for the alternatives that cannot pool) for the same chat-formatted, left-padded
batch. Methods run interleaved, round after round, so load on a shared machine hits them alike;
the table reports the median per method and its speed relative to a plain HF forward with logits.

    python benchmarks/capture.py                      # SmolLM2-135M-Instruct, 32 prompts
    python benchmarks/capture.py --model tiny         # tiny random llama (seconds)
    python benchmarks/capture.py --write              # also update BENCHMARKS.md "## Capture"
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Capture"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _random_models import SHAPES, random_llama  # noqa: E402


def load(name: str, backend: str, device: str = "cpu") -> Any:
    """A fresh model per backend: booting TransformerLens rewires the HF model it wraps."""
    import oyster_steer as osteer
    from oyster_steer.testing import tiny_model

    if name in SHAPES:  # random-init Llama shapes (the GPU runs): seeded, the same weights each
        model = random_llama(name, device)
        return model.with_backend(backend) if backend != "hf" else model
    if name == "tiny":
        model = tiny_model("llama", "hf")
        model.hf.to(device)
        return model.with_backend(backend) if backend != "hf" else model
    return osteer.load_model(backend=backend, device=device)


def methods(models: dict[str, Any], prompts: list[str]) -> dict[str, Callable[[], Any]]:
    """Name -> zero-argument callable doing one full capture (or forward) of ``prompts``."""
    import nnsight

    from oyster_steer import capture
    from oyster_steer.backends import position_ids

    hf, tl = models["hf"], models["tl"]
    ids, mask = hf.encode(prompts)  # (B, T) left-padded, as every method below sees it
    pos = position_ids(mask)
    n, bridge, lm = hf.n_layers, tl.native, models["nnsight"].native
    resid_post = lambda name: name.endswith("hook_resid_post")  # noqa: E731

    def nnsight_trace() -> Any:
        with lm.trace(ids, attention_mask=mask):
            saved = nnsight.save([lm.model.layers[i].output for i in range(n)])
        return saved

    def ours(model: Any) -> Callable[[], Any]:
        return lambda: capture(
            model, prompts, "resid_post", batch_size=len(prompts), progress=False
        )

    def ours_whole_prompts() -> Any:  # the same capture, the shared chat head recomputed per row
        from oyster_steer.activations import _capture

        saved, _capture._MIN_SHARED = _capture._MIN_SHARED, 1 << 30
        try:
            return ours(hf)()
        finally:
            _capture._MIN_SHARED = saved

    return {
        "(a) HF forward, logits": lambda: (
            hf.hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        ),
        "(b) HF decoder, no LM head": lambda: hf.hf.base_model(
            input_ids=ids, attention_mask=mask, position_ids=pos
        ),
        "(c) oyster_steer.capture, hf": ours(hf),
        "(c0) oyster_steer.capture, hf, head recomputed per prompt": ours_whole_prompts,
        "(d) TL run_with_cache, resid_post filter": lambda: bridge.run_with_cache(
            ids, attention_mask=mask, names_filter=resid_post
        ),
        "(e) TL run_with_cache, unfiltered": lambda: bridge.run_with_cache(
            ids, attention_mask=mask
        ),
        "(f) nnsight trace, every layer saved": nnsight_trace,
        "(g) oyster_steer.capture, tl": ours(tl),
        "(h) oyster_steer.capture, nnsight": ours(models["nnsight"]),
    }


def measure(
    fns: dict[str, Callable[[], Any]], repeats: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds per call; one warm-up round, then ``repeats`` interleaved rounds.

    CPU time of the process is reported beside wall time: on a shared machine other jobs stretch
    wall time unevenly, while single-threaded CPU time measures the work itself.
    """
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    with torch.inference_mode():
        for round_ in range(repeats + 1):
            for name, fn in fns.items():
                _sync()
                wall, cpu = time.perf_counter(), time.process_time()
                out = fn()
                _sync()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                del out
                if round_:
                    times[name].append((wall, cpu))
            print(f"round {round_}/{repeats} done", file=sys.stderr)
    return times


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def table(times: dict[str, list[tuple[float, float]]]) -> str:
    def med(name: str, i: int) -> float:
        return statistics.median(t[i] for t in times[name])

    base = "(a) HF forward, logits"
    rows = [
        "| method | CPU s (median) | speed vs (a), CPU | wall s (median) | speed vs (a), wall |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in times:
        cpu, wall = med(name, 1), med(name, 0)
        rows.append(
            f"| {name} | {cpu:.2f} | {med(base, 1) / cpu:.2f}x | {wall:.2f} | {med(base, 0) / wall:.2f}x |"
        )
    return "\n".join(rows)


def machine() -> str:
    if torch.cuda.is_available():
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        return (
            f"{torch.cuda.get_device_name()}, torch {torch.__version__}, host load average {load}"
        )
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        names = [
            ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()}-core CPU ({cpu}), torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads, load average {load} (1/5/15 min) when the run ended"
    )


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace (or append) this benchmark's section, leaving every other section alone."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next(
            (j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines)
        )
        new = (
            "".join(lines[:start])
            + text
            + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
        )
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2", choices=("smollm2", "tiny", *SHAPES))
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (a GPU run: --device cuda)")
    p.add_argument("--write", action="store_true", help="update BENCHMARKS.md's Capture section")
    p.add_argument(
        "--methods",
        default=None,
        help="comma-separated method labels to run, e.g. a,b,c,c0 (default: all; (a) always runs)",
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from oyster_steer.data import load_starter

    prompts = load_starter().sample(args.prompts // 4 + 1, seed=0).texts[: args.prompts]
    models = {b: load(args.model, b, args.device) for b in ("hf", "tl", "nnsight")}
    ids, mask = models["hf"].encode(prompts)
    fns = methods(models, prompts)
    if args.methods:
        keep = {f"({m.strip()})" for m in args.methods.split(",")} | {"(a)"}
        fns = {k: v for k, v in fns.items() if k.split()[0] in keep}
    times = measure(fns, args.repeats)
    hf = models["hf"]
    command = "python benchmarks/capture.py" + (
        f" --model {args.model}" if args.model != "smollm2" else ""
    )
    command += f" --prompts {args.prompts} --repeats {args.repeats}"
    command += f" --threads {args.threads}" if args.threads else ""
    command += f" --methods {args.methods}" if args.methods else ""
    command += f" --device {args.device}" if args.device != "cpu" else ""
    text = (
        f"{SECTION}\n\n"
        f"Capture of `resid_post` at every layer ({hf.n_layers} layers, d={hf.d_model}) of "
        f"{hf.name}, {len(prompts)} chat-formatted starter prompts, one left-padded batch of "
        f"{tuple(ids.shape)} tokens ({int(mask.sum())} real), "
        f"{str(next(hf.hf.parameters()).dtype).removeprefix('torch.')}, median of {args.repeats} "
        f"interleaved rounds after a warm-up.\n\n"
        f"Machine: {machine()}.\n\nCommand: `{command}`\n\n{table(times)}\n"
    )
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
