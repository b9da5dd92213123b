"""``oyster-steer demo``: the main job. Probes, vectors, control plan, evaluation, one HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report import DemoConfig, run_demo
from ._common import add_device, add_model, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the end-to-end demo and write a self-contained HTML report",
        description=(
            "Load the model, read its shipped risk/intent probes, constructive steering vector and control pack "
            "(training any that are missing on the built-in starter set), evaluate unsteered vs constructive vector vs "
            "control plan on held-out starter prompts, and write one offline HTML report with layer sweeps, the risk "
            "boundary, per-token probe traces, the strength/KL curve, the evaluation table and side-by-side replies. "
            "Works without ../shared/data (used for extra plots when present). About 10 minutes on a 2-core CPU."
        ),
    )
    add_model(p)
    add_device(p)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("out/report.html"),
        help="where the HTML report goes (default: out/report.html)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("runs/demo"),
        help="capture cache and resumable results (default: runs/demo)",
    )
    p.add_argument(
        "--n-per-class",
        type=positive_int,
        default=4,
        help="evaluation prompts per intent from the starter test split (default: 4)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=40,
        help="reply length in tokens (default: 40)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=16,
        help="generation batch size (default: 16, see BENCHMARKS.md)",
    )
    p.add_argument(
        "--sweep-stride",
        type=positive_int,
        default=2,
        help="sweep every k-th layer, the last always included (default: 2)",
    )
    p.add_argument(
        "--strength",
        type=float,
        default=None,
        help="constructive vector strength (default: its calibrated strength)",
    )
    p.add_argument(
        "--refusal-probe",
        default=None,
        help="a saved reply-refusal probe (default: train one on exemplars, cached)",
    )
    p.add_argument(
        "--no-shared", action="store_true", help="skip the extra plots that use ../shared/data"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 when the machine is already busy, else torch's choice)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on the first unavailable stage instead of labelling it in the report",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    _set_threads(args.threads)
    cfg = DemoConfig(
        model=args.model,
        backend=args.backend,
        device=args.device,
        out=args.out,
        work_dir=args.work_dir,
        n_per_class=args.n_per_class,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        sweep_stride=args.sweep_stride,
        strength=args.strength,
        use_shared=not args.no_shared,
        refusal_probe=args.refusal_probe,
        seed=args.seed,
        strict=args.strict,
        progress=not args.quiet,
    )
    outcome = run_demo(cfg)
    if outcome.unavailable:
        print(f"not available in this report: {', '.join(outcome.unavailable)}")
    print(f"report written to {outcome.path.resolve()} in {outcome.total_seconds:.0f} s")
    return 0


def _set_threads(threads: int | None) -> None:
    """Use ``threads``; by default one thread when other work already fills the cores.

    On a shared 2-core machine, two torch threads competing with other processes ran the
    demo's probe fits ~7x slower than one thread (spinning OpenMP workers).
    """
    import os

    import torch

    if threads is None:
        cores = os.cpu_count() or 1
        busy = hasattr(os, "getloadavg") and os.getloadavg()[0] >= cores
        threads = 1 if busy else None
    if threads:
        torch.set_num_threads(threads)
