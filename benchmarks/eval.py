"""``oyster-steer eval`` end to end: the plan's unsteered rows reused vs generated again.

Runs the CLI's ``eval`` (unsteered + one control plan, judges included) the way a user does, in
two modes, interleaved round after round: ``reuse`` (today: a plan's rows whose gates switch on
no action take the unsteered condition's reply, after one prompt pass up to the probes) and
``generate`` (before: every row of every condition generated). The table reports median CPU and
wall seconds of the whole command, the speed-up, and how many of the plan's replies and
decisions are identical between the two.

    python benchmarks/eval.py --n-per-class 8 --repeats 1 --threads 1
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

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture import machine  # noqa: E402


@contextlib.contextmanager
def generate_all() -> Iterator[None]:
    """The path before the reuse: no row is taken from the unsteered condition."""
    from oyster_steer.eval import _evaluate

    saved = _evaluate._unsteered_rows
    _evaluate._unsteered_rows = lambda *a: {}  # type: ignore[assignment]
    try:
        yield
    finally:
        _evaluate._unsteered_rows = saved  # type: ignore[assignment]


def _rows(path: Path) -> dict[tuple[str, str, str], tuple]:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == "reply":
            out[r["kind"], r["condition"], r["id"]] = (
                r["reply"],
                r.get("control_strategy"),
                r.get("control_intent"),
            )
        elif r.get("kind") == "divergence":
            out[r["kind"], r["condition"], r["id"]] = (round(r["kl"], 6),)
    return out


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
        help="write a CPU-time cProfile of the first reuse run here (where its time goes)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    base = ["eval", "--n-per-class", str(args.n_per_class), "--plan", args.plan, "--quiet"]
    times: dict[str, list[tuple[float, float]]] = {}
    rows: dict[str, dict] = {}
    for round_ in range(args.repeats):
        modes = ["generate", "reuse"] if round_ % 2 == 0 else ["reuse", "generate"]
        for mode in modes:
            path = args.out / f"{mode}-{round_}.jsonl"
            path.unlink(missing_ok=True)
            ctx = generate_all() if mode == "generate" else contextlib.nullcontext()
            wall, cpu = time.perf_counter(), time.process_time()
            prof = None
            if args.profile and mode == "reuse" and round_ == 0:
                prof = cProfile.Profile(time.process_time)
            with ctx, contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115
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
        print(f"round {round_ + 1}/{args.repeats} done", file=sys.stderr)
    med = {m: [statistics.median(t[i] for t in ts) for i in (0, 1)] for m, ts in times.items()}
    old, new = rows["generate"], rows["reuse"]
    plan_keys = [k for k in old if k[0] == "reply" and k[1] != "unsteered"]
    same = sum(old[k] == new.get(k) for k in plan_keys)
    div = [k for k in old if k[0] == "divergence"]
    same_div = sum(old[k] == new.get(k) for k in div)
    helped = sum(new[k][1] == "help" for k in plan_keys if k in new)
    reused = f" Plan rows decided `help` (no action: reused): {helped}/{len(plan_keys)}."
    lines = [
        f"`oyster-steer eval --n-per-class {args.n_per_class} --plan {args.plan}` (unsteered + the "
        f"plan, judges included), median of {args.repeats} interleaved rounds.",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `python benchmarks/eval.py --n-per-class {args.n_per_class} --repeats "
        f"{args.repeats} --threads {args.threads}`",
        "",
        "| mode | CPU s (median) | speed-up, CPU | wall s (median) | speed-up, wall |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in ("generate", "reuse"):
        c, w = med[mode][1], med[mode][0]
        lines.append(
            f"| {mode} | {c:.1f} | {med['generate'][1] / c:.2f}x | {w:.1f} | "
            f"{med['generate'][0] / w:.2f}x |"
        )
    lines += [
        "",
        f"Plan replies (with decisions) identical: {same}/{len(plan_keys)}; divergence rows "
        f"identical (KL to 1e-6): {same_div}/{len(div)}.{reused}",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
