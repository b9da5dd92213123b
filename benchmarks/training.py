"""Learned-vector training and strength calibration, from cached lower blocks vs full forwards.

Both runs compute the same thing (the tests prove equal vectors and curves); the fast one runs
the blocks below the first steered site once per example (:func:`oyster_steer.activations.frozen_inputs`)
and only the blocks above it on each step and strength. Variants run interleaved, round after
round; the table reports median CPU and wall seconds, the speed-up, and the largest difference
between the two runs' outputs. ``--where`` instead profiles one fast run of each and prints
where its time goes.

    python benchmarks/training.py                  # SmolLM2-135M-Instruct, site blocks.12.hook_resid_post
    python benchmarks/training.py --model tiny     # tiny random llama (seconds)
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _random_models import SHAPES  # noqa: E402
from capture import load, machine  # noqa: E402


@contextlib.contextmanager
def full_forwards() -> Iterator[None]:
    """Switch the cached-lower-blocks path off (what training and calibration did before): every
    module that bound ``supports_forward_from`` at import sees False."""
    import oyster_steer.steering._calibrate  # noqa: F401  (bind the callers before patching)
    import oyster_steer.vectors._intervention  # noqa: F401
    import oyster_steer.vectors._learn  # noqa: F401

    bound = [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("oyster_steer.") and hasattr(m, "supports_forward_from")
    ]
    saved = [m.supports_forward_from for m in bound]
    for m in bound:
        m.supports_forward_from = lambda model: False
    try:
        yield
    finally:
        for m, fn in zip(bound, saved, strict=True):
            m.supports_forward_from = fn


@contextlib.contextmanager
def one_padded_pass() -> Iterator[None]:
    """The cached-lower-blocks path as it was before the reply buckets and the shared head:
    one reply pass padded to the longest reply, and every prompt's chat head run per row."""
    from oyster_steer.activations import _scoring

    saved = _scoring._BUCKET_COST, _scoring.shared_prefix_length
    _scoring._BUCKET_COST = 10**9
    _scoring.shared_prefix_length = lambda rows: 0  # type: ignore[assignment]
    try:
        yield
    finally:
        _scoring._BUCKET_COST, _scoring.shared_prefix_length = saved


MODES = ("full forwards", "cached, before", "cached lower blocks")


def mode_context(mode: str) -> Any:
    if mode == "full forwards":
        return full_forwards()
    if mode == "cached, before":
        return one_padded_pass()
    return contextlib.nullcontext()


def jobs(model: Any, args: argparse.Namespace) -> dict[str, Callable[[str], Any]]:
    from oyster_steer.data import load_starter
    from oyster_steer.steering._calibrate import calibrate_strength
    from oyster_steer.vectors._learn import LearnConfig
    from oyster_steer.vectors._train import train_vector
    from oyster_steer.vectors._vector import SteeringVector

    data = load_starter()
    site = args.site if args.model != "tiny" else "blocks.1.hook_resid_post"
    gen = torch.Generator().manual_seed(0)
    vec = SteeringVector.from_tensors(
        model, {site: torch.randn(model.d_model, generator=gen)}, method="mean_diff"
    )
    cfg = LearnConfig(steps=args.steps, eval_every=args.steps, max_reply_tokens=24, seed=0)

    def train(mode: str) -> Any:
        v = train_vector(
            model,
            data,
            method="learned",
            sites=site,
            n_per_intent=args.n,
            config=cfg,
            progress=False,
        )
        return v.directions[site]

    def calibrate(mode: str) -> Any:
        c = calibrate_strength(
            model, vec, data, (0.5, 1.0, 2.0), n_per_intent=args.n, kl_tokens=4, progress=False
        )
        return torch.tensor([*c.kl, *c.margin()])

    vecs = [
        SteeringVector.from_tensors(
            model, {site: torch.randn(model.d_model, generator=gen)}, method="mean_diff"
        )
        for _ in range(3)
    ]

    def calibrate3(mode: str) -> Any:
        # what vector-results does: three vectors on the same prompts, with one shared
        # CalibrationCache in today's mode (separate calls before)
        from oyster_steer.steering._calibrate import CalibrationCache

        cache = CalibrationCache() if mode == "cached lower blocks" else None
        out = []
        for v in vecs:
            c = calibrate_strength(
                model,
                v,
                data,
                (0.5, 1.0, 2.0),
                n_per_intent=args.n,
                kl_tokens=4,
                progress=False,
                cache=cache,
            )
            out += [*c.kl, *c.margin()]
        return torch.tensor(out)

    return {
        "train-vector (learned)": train,
        "calibrate_strength": calibrate,
        "calibrate 3 vectors": calibrate3,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2", choices=("smollm2", "tiny", *SHAPES))
    p.add_argument("--site", default="blocks.12.hook_resid_post")
    p.add_argument("--n", type=int, default=8, help="prompts per intent")
    p.add_argument("--steps", type=int, default=10, help="learned-vector optimisation steps")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--where", action="store_true", help="profile one fast run of each instead")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load(args.model, "hf", args.device)
    todo = jobs(model, args)
    if args.where:
        for name, fn in todo.items():
            prof = cProfile.Profile()
            prof.runcall(fn, "cached lower blocks")
            print(f"== {name}")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(
                r"_scoring|_learn|_calibrate|_capture|_generate|_forward|generate\b", 25
            )
        return 0
    times: dict[str, list[tuple[float, float]]] = {}
    outs: dict[str, Any] = {}
    for round_ in range(args.repeats):
        for name, fn in todo.items():
            modes = MODES if round_ % 2 == 0 else MODES[::-1]
            for mode in modes:
                wall, cpu = time.perf_counter(), time.process_time()
                with mode_context(mode):
                    outs[name, mode] = fn(mode).cpu()
                times.setdefault(f"{name}|{mode}", []).append(
                    (time.perf_counter() - wall, time.process_time() - cpu)
                )
        print(f"round {round_ + 1}/{args.repeats} done", file=sys.stderr)
    med = lambda k, i: statistics.median(t[i] for t in times[k])  # noqa: E731
    rows = [
        "| job | run | CPU s (median) | speed-up, CPU | wall s (median) | speed-up, wall | max abs diff of outputs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in todo:
        base = f"{name}|full forwards"
        for mode in MODES:
            k = f"{name}|{mode}"
            diff = float((outs[name, "full forwards"] - outs[name, mode]).abs().max())
            rows.append(
                f"| {name} | {mode} | {med(k, 1):.1f} | {med(base, 1) / med(k, 1):.2f}x | "
                f"{med(k, 0):.1f} | {med(base, 0) / med(k, 0):.2f}x | "
                + (f"{diff:.1e} |" if mode != "full forwards" else "|")
            )
    site = args.site if args.model != "tiny" else "blocks.1.hook_resid_post"
    command = (
        f"python benchmarks/training.py --n {args.n} --steps {args.steps} --repeats {args.repeats}"
    )
    command += f" --threads {args.threads}" if args.threads else ""
    command += f" --model {args.model}" if args.model != "smollm2" else ""
    command += f" --site {args.site}" if args.model not in ("smollm2", "tiny") else ""
    command += f" --device {args.device}" if args.device != "cpu" else ""
    print(
        f"{model.name}, steered site `{site}`; train-vector: learned, {args.n} prompts per intent, "
        f"{args.steps} steps (+ material and one validation); calibrate_strength: 3 strengths + 0, "
        f"{args.n} prompts per intent; calibrate 3 vectors: three such calibrations on the same prompts. Median of {args.repeats} interleaved rounds.\n\n"
        f"Machine: {machine()}.\n\nCommand: `{command}`\n\n" + "\n".join(rows)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
