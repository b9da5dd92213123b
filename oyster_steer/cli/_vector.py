"""``oyster-steer train-vector`` and ``oyster-steer vector-results``.

``train-vector --shipped`` reproduces ``vectors/<model>/``: the constructive vector by each method
(mean_diff, pca, learned; each calibrated on the validation split), ``constructive.safetensors``
(whichever gains the most margin at the KL budget on validation) and ``refusal.safetensors``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from ..reproduce._vector_results import results_markdown, write_section
from ..steering._calibrate import CalibrationCache, calibrate_strength
from ..vectors._learn import LearnConfig
from ..vectors._train import shared_activations, train_vector
from ..vectors._vector import load_vector, save_vector
from ._common import add_common, data_from_args, model_from_args, positive_int

# The recipe of the shipped vectors; `train-vector --shipped` follows it exactly.
SHIPPED: dict[str, Any] = {
    "site": "blocks.12.hook_resid_post",  # best margin per unit of benign KL among layers 8/12/16
    "n_per_intent": {"mean_diff": 64, "pca": 64, "learned": 32, "refusal": 32},  # training prompts
    "learn": {
        "steps": 30,
        "eval_every": 10,
        "patience": 2,
        "max_reply_tokens": 24,
        "max_minutes": 20.0,
    },
    "kl_budget": 0.1,  # nats: benign next-token KL allowed at the recommended strength
    "calibration_prompts": 8,  # validation prompts per intent for the recommended strength
    "strengths": {
        "mean_diff": (0.125, 0.25, 0.5, 1, 2),
        "pca": (0.125, 0.25, 0.5, 1, 2),
        "learned": (0.25, 0.5, 1, 1.5, 2),
    },
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-vector",
        help="train a steering vector (or --shipped: the shipped set)",
        description=__doc__,
    )
    add_common(p, out="vectors/custom.safetensors")
    p.add_argument("--method", default="mean_diff", choices=("mean_diff", "pca", "learned"))
    p.add_argument("--target", default="constructive", choices=("constructive", "refusal"))
    p.add_argument(
        "--sites",
        nargs="+",
        default=None,
        help="hook sites (default: the block at 40%% depth, resid_post)",
    )
    p.add_argument(
        "--n-per-intent", type=positive_int, default=64, help="training prompts per intent"
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=SHIPPED["learn"]["steps"],
        help="learned: optimisation steps",
    )
    p.add_argument("--max-minutes", type=float, default=None, help="learned: wall-clock bound")
    p.add_argument("--checkpoint", type=Path, default=None, help="learned: state file for --resume")
    p.add_argument(
        "--resume", action="store_true", help="learned: continue the run in --checkpoint"
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="store the strength recommended on the validation split",
    )
    p.add_argument(
        "--kl-budget",
        type=float,
        default=SHIPPED["kl_budget"],
        help="benign KL budget for --calibrate",
    )
    p.add_argument(
        "--shipped", action="store_true", help="reproduce the shipped vectors into --out-dir"
    )
    p.add_argument(
        "--out-dir", type=Path, default=None, help="for --shipped (default: vectors/<model>)"
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads (1 is fastest on a busy machine)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)
    r = subparsers.add_parser(
        "vector-results", help="write RESULTS.md '## Steering vectors' from the shipped vectors"
    )
    add_common(r, out="RESULTS.md")
    r.add_argument("--vectors-dir", type=Path, default=None, help="default: vectors/<model>")
    r.add_argument("--n-per-intent", type=positive_int, default=24, help="test prompts per intent")
    r.add_argument("--threads", type=positive_int, default=None)
    r.set_defaults(func=run_results)


def _threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def run(args: argparse.Namespace) -> int:
    _threads(args)
    model, data = model_from_args(args), data_from_args(args)
    if args.shipped:
        return ship(model, data, args.out_dir or Path("vectors") / model.name, args)
    vec = _train(model, data, args.method, args.target, args.sites, args.n_per_intent, args)
    if args.calibrate:
        vec = _calibrated(model, vec, data.split("validation"), args.kl_budget, None, args)[0]

    print(f"saved {vec} to {save_vector(vec, args.out)}")
    return 0


def _train(
    model: Any, data: Any, method: str, target: str, sites: Any, n: int, args: argparse.Namespace
) -> Any:

    recipe = {
        **SHIPPED["learn"],
        "steps": args.steps,
        "max_minutes": args.max_minutes or SHIPPED["learn"]["max_minutes"],
    }
    cfg = LearnConfig(**recipe, seed=args.seed)
    return train_vector(
        model,
        data.split("train"),
        method=method,
        target=target,
        sites=sites,
        n_per_intent=n,
        validation=data.split("validation"),
        config=cfg,
        checkpoint=args.checkpoint,
        resume=args.resume,
        seed=args.seed,
        description="train split",
        progress=not args.quiet,
    )


def _calibrated(
    model: Any,
    vec: Any,
    heldout: Any,
    budget: float,
    grid: Any,
    args: argparse.Namespace,
    cache: CalibrationCache | None = None,
) -> Any:

    curve = calibrate_strength(
        model,
        vec,
        heldout,
        grid or (0.5, 1, 2, 4, 8),
        n_per_intent=SHIPPED["calibration_prompts"],
        progress=not args.quiet,
        cache=cache,
    )
    strength = curve.recommend(budget)
    meta = {
        "kl_budget": f"{budget:g}",
        "calibration": "validation split",
        "validation_gain": f"{curve.gain_at_kl(budget):.4f}",
    }
    print(
        f"{vec.method} {vec.meta.get('target')}: strength {strength:.2f} at benign KL <= {budget:g}"
    )
    return vec.with_strength(strength, **meta), curve


def ship(model: Any, data: Any, out_dir: Path, args: argparse.Namespace) -> int:
    """Train and calibrate every shipped vector; about 10-15 min on two idle CPU cores."""

    started = time.monotonic()
    args.steps, n = SHIPPED["learn"]["steps"], SHIPPED["n_per_intent"]
    site, budget, val = SHIPPED["site"], SHIPPED["kl_budget"], data.split("validation")
    gains = {}
    cache = CalibrationCache()  # the four calibrations share their prompts and unsteered scores
    with shared_activations():  # mean_diff and pca read the same contrasts: captured once
        for method in ("mean_diff", "pca", "learned"):
            vec = _train(model, data, method, "constructive", site, n[method], args)
            vec, curve = _calibrated(
                model, vec, val, budget, SHIPPED["strengths"][method], args, cache
            )
            gains[method] = curve.gain_at_kl(budget)
            save_vector(vec, out_dir / f"constructive-{method}.safetensors")
    best = max(gains, key=lambda m: gains[m])
    shutil.copyfile(
        out_dir / f"constructive-{best}.safetensors", out_dir / "constructive.safetensors"
    )
    refusal = _train(model, data, "mean_diff", "refusal", site, n["refusal"], args)
    refusal = _calibrated(
        model, refusal, val, budget, SHIPPED["strengths"]["mean_diff"], args, cache
    )[0]
    save_vector(refusal, out_dir / "refusal.safetensors")
    print(
        f"validation margin gain at KL {budget:g}: "
        + ", ".join(f"{m} {g:+.3f}" for m, g in gains.items())
    )
    print(
        f"constructive.safetensors = {best}; wrote {out_dir} in {(time.monotonic() - started) / 60:.1f} min"
    )
    return 0


def run_results(args: argparse.Namespace) -> int:

    _threads(args)
    model, data = model_from_args(args), data_from_args(args)
    folder = args.vectors_dir or Path("vectors") / model.name
    vectors = {
        m: load_vector(folder / f"constructive-{m}.safetensors", model)
        for m in ("mean_diff", "pca", "learned")
    }
    command = "oyster-steer vector-results" + (f" --threads {args.threads}" if args.threads else "")
    text, _ = results_markdown(
        model,
        vectors,
        data.split("test"),
        strengths=SHIPPED["strengths"],
        n_per_intent=args.n_per_intent,
        command=command,
        progress=not args.quiet,
    )
    print(f"wrote '## Steering vectors' to {write_section(args.out, text)}")
    return 0
