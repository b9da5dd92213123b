"""``oyster-steer capture``: residual activations of a prompt set to safetensors."""

from __future__ import annotations

import argparse

from ..activations._capture import capture
from ._common import (
    add_common,
    add_force,
    data_from_args,
    model_from_args,
    positive_int,
    refuse_overwrite,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "capture",
        help="capture residual activations of a prompt set",
        description="Capture residual-stream activations of every prompt (the shared data sets under --data plus the starter set) at the given sites and save them as safetensors.",
    )
    add_common(p, out="runs/activations.safetensors")
    p.add_argument(
        "--sites",
        nargs="+",
        default=["resid_post"],
        help="site names or a bare kind for every layer (default: resid_post)",
    )
    p.add_argument("--positions", default="last", choices=("last", "mean", "all"))
    p.add_argument(
        "--split", default=None, choices=("train", "validation", "test"), help="only this split"
    )
    p.add_argument("--batch-size", type=positive_int, default=16)
    add_force(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    refuse_overwrite(args.out, args)
    model = model_from_args(args)
    prompts = data_from_args(args)
    if args.split:
        prompts = prompts.split(args.split)
    acts = capture(
        model,
        prompts,
        args.sites,
        pool=args.positions,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    path = acts.save(args.out)
    print(f"saved {len(acts)} prompts x {len(acts.sites)} sites to {path}")
    return 0
