"""``oyster-steer eval`` end to end: the state before, the plan's rows reused, the judges' passes cut.

Runs the CLI's ``eval`` (unsteered + one control plan, judges included) the way a user does, in
three modes, interleaved round after round in one process:

- ``generate``: every row of every condition generated; the judges run the coherence NLL (two
  passes, LM head everywhere) and the refusal probe's forward separately; divergence runs every
  row steered (the code before the plan-row reuse, eb71423);
- ``reuse``: a plan's rows whose gates switch on no action take the unsteered condition's reply
  (after one prompt pass up to the probes), judges and divergence as in ``generate`` (main at
  a35fb8a);
- ``now``: as ``reuse``, and the judges read NLL and probe features from one pass over prompt +
  reply with the chat head shared and the LM head only at reply positions
  (``eval._judge_pass``); the unsteered replies' reads come from their generation itself;
  divergence runs only the plan's gated rows steered, and its prompt pass computes the LM head
  at the last position only.

The table reports median CPU and wall seconds of the whole command, speed-ups against
``generate``, and how many replies, decisions and verdicts are identical to ``generate``'s
(judge values to 1e-5).

    python benchmarks/eval.py --n-per-class 8 --repeats 1 --threads 1

``--batch-sizes 16,32`` instead times the current code (``now``) at each ``--batch-size``,
interleaved, against the first (replies, decisions and verdicts compared the same way).

    python benchmarks/eval.py --n-per-class 8 --repeats 2 --threads 1 --batch-sizes 16,32
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture import machine  # noqa: E402


@contextlib.contextmanager
def patched(mode: str) -> Iterator[None]:
    """The code path of ``mode`` (see the module docstring)."""
    from oyster_steer.eval import _evaluate, _generate, _judges

    saved = [
        (_evaluate, "_unsteered_rows"),
        (_evaluate, "_generation_reads"),
        (_judges, "_model_reads"),
        (_generate, "_steered_rows"),
        (_generate, "_last_logits_only"),
    ]
    old = [getattr(m, n) for m, n in saved]
    if mode in ("generate", "reuse"):
        separate = _judges._probe_scores, _judges._nlls
        _evaluate._generation_reads = lambda *a: (None, False)  # type: ignore[assignment]
        _judges._model_reads = lambda j, m, rec, rep, known=None: (  # type: ignore[assignment]
            separate[0](j, m, rec, rep),
            separate[1](j, m, rec, rep),
        )
        _generate._steered_rows = lambda m, h, p: list(range(len(p)))  # type: ignore[assignment]
        _generate._last_logits_only = lambda m: {}  # type: ignore[assignment]
    if mode == "generate":
        _evaluate._unsteered_rows = lambda *a: {}  # type: ignore[assignment]
    try:
        yield
    finally:
        for (m, n), f in zip(saved, old, strict=True):
            setattr(m, n, f)


def _rows(path: Path) -> dict[tuple[str, str, str], dict]:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") in ("reply", "divergence"):
            out[r["kind"], r["condition"], r["id"]] = r
    return out


def _same(a: dict, b: dict | None) -> bool:
    """Two rows equal: every field but the timing, floats to 1e-5 (relative) / 1e-6."""
    if b is None or set(a) != set(b):
        return False
    for k, v in a.items():
        if k == "gen_seconds":
            continue
        w = b[k]
        if isinstance(v, float) and isinstance(w, float):
            if abs(v - w) > max(1e-6, 1e-5 * abs(v)):
                return False
        elif v != w:
            return False
    return True


MODES = ("generate", "reuse", "now")


def main(argv: list[str] | None = None) -> int:
    from oyster_steer.cli import main as cli

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-per-class", type=int, default=8)
    p.add_argument("--plan", default="vectors/smollm2-135m-instruct/control.safetensors")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/bench-eval"))
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write a CPU-time cProfile of the first now run here (where its time goes)",
    )
    p.add_argument(
        "--batch-sizes",
        default=None,
        help="comma-separated generation batch sizes: time the current eval at each instead",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    base = ["eval", "--n-per-class", str(args.n_per_class), "--plan", args.plan, "--quiet"]
    if args.batch_sizes:
        return _batch_sizes(args, base, cli)
    times: dict[str, list[tuple[float, float]]] = {}
    rows: dict[str, dict] = {}
    for round_ in range(args.repeats):
        k = round_ % len(MODES)
        for mode in MODES[k:] + MODES[:k]:  # rotating order
            path = args.out / f"{mode}-{round_}.jsonl"
            path.unlink(missing_ok=True)
            wall, cpu = time.perf_counter(), time.process_time()
            prof = None
            if args.profile and mode == "now" and round_ == 0:
                prof = cProfile.Profile(time.process_time)
            with patched(mode), contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115
                argv_ = [*base, "--results", str(path)]
                rc = prof.runcall(cli, argv_) if prof else cli(argv_)
            if prof:
                prof.dump_stats(args.profile)
            times.setdefault(mode, []).append(
                (time.perf_counter() - wall, time.process_time() - cpu)
            )
            if rc:
                raise SystemExit(f"oyster-steer eval failed in mode {mode} (exit {rc})")
            rows[mode] = _rows(path)
            print(f"round {round_ + 1} {mode}: {times[mode][-1]}", file=sys.stderr)
    med = {m: [statistics.median(t[i] for t in ts) for i in (0, 1)] for m, ts in times.items()}
    ref = rows["generate"]
    replies = [k for k in ref if k[0] == "reply"]
    div = [k for k in ref if k[0] == "divergence"]
    plan_keys = [k for k in replies if k[1] != "unsteered"]
    helped = sum(rows["now"][k].get("control_strategy") == "help" for k in plan_keys)
    lines = [
        f"`oyster-steer eval --n-per-class {args.n_per_class} --plan {args.plan}` (unsteered + the "
        f"plan, judges included), median of {args.repeats} interleaved rounds (rotating order).",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `python benchmarks/eval.py --n-per-class {args.n_per_class} --repeats "
        f"{args.repeats} --threads {args.threads}`",
        "",
        "| mode | CPU s (median) | speed-up, CPU | wall s (median) | speed-up, wall | "
        "reply rows identical to generate | divergence rows identical |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        c, w = med[mode][1], med[mode][0]
        same = sum(_same(ref[k], rows[mode].get(k)) for k in replies)
        same_div = sum(_same(ref[k], rows[mode].get(k)) for k in div)
        lines.append(
            f"| {mode} | {c:.1f} | {med['generate'][1] / c:.2f}x | {w:.1f} | "
            f"{med['generate'][0] / w:.2f}x | {same}/{len(replies)} | {same_div}/{len(div)} |"
        )
    lines += [
        "",
        f"Identical: reply, decision, verdict and every judge field (floats to 1e-5). Plan rows "
        f"decided `help` (no action: reused): {helped}/{len(plan_keys)}.",
    ]
    print("\n".join(lines))
    return 0


def _batch_sizes(args: argparse.Namespace, base: list[str], cli: Any) -> int:
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    times: dict[int, list[tuple[float, float]]] = {b: [] for b in sizes}
    rows: dict[int, dict] = {}
    for round_ in range(args.repeats):
        k = round_ % len(sizes)
        for size in sizes[k:] + sizes[:k]:  # rotating order
            path = args.out / f"batch{size}-{round_}.jsonl"
            path.unlink(missing_ok=True)
            wall, cpu = time.perf_counter(), time.process_time()
            with contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115
                rc = cli([*base, "--batch-size", str(size), "--results", str(path)])
            times[size].append((time.perf_counter() - wall, time.process_time() - cpu))
            if rc:
                raise SystemExit(f"oyster-steer eval failed at --batch-size {size} (exit {rc})")
            rows[size] = _rows(path)
            print(f"round {round_ + 1} batch {size}: {times[size][-1]}", file=sys.stderr)
    ref = rows[sizes[0]]
    replies = [k for k in ref if k[0] == "reply"]
    div = [k for k in ref if k[0] == "divergence"]
    med = {b: [statistics.median(t[i] for t in ts) for i in (0, 1)] for b, ts in times.items()}
    lines = [
        f"`oyster-steer eval --n-per-class {args.n_per_class} --plan {args.plan} --batch-size B` "
        f"(unsteered + the plan, judges included), median of {args.repeats} interleaved rounds "
        "(rotating order).",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `python benchmarks/eval.py --n-per-class {args.n_per_class} --repeats "
        f"{args.repeats} --threads {args.threads} --batch-sizes {args.batch_sizes}`",
        "",
        f"| --batch-size | CPU s (median) | speed vs {sizes[0]}, CPU | wall s (median) | speed vs "
        f"{sizes[0]}, wall | reply rows identical | divergence rows identical | CPU s per round |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for b in sizes:
        c, w = med[b][1], med[b][0]
        same = sum(_same(ref[k], rows[b].get(k)) for k in replies)
        same_div = sum(_same(ref[k], rows[b].get(k)) for k in div)
        lines.append(
            f"| {b} | {c:.1f} | {med[sizes[0]][1] / c:.2f}x | {w:.1f} | "
            f"{med[sizes[0]][0] / w:.2f}x | {same}/{len(replies)} | {same_div}/{len(div)} | "
            + ", ".join(f"{t[1]:.1f}" for t in times[b])
            + " |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
