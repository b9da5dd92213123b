"""``oyster-steer capture``: residual activations of a prompt set to safetensors."""

from __future__ import annotations

import argparse

from ._common import add_common, data_from_args, model_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "capture",
        help="capture residual activations of a prompt set",
        description="Capture residual-stream activations of every prompt (shared data + starter set, or --prompts FILE) at the given sites and save them as safetensors.",
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
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..activations._capture import capture

    model = model_from_args(args)
    prompts = data_from_args(args)
    if args.split:
        prompts = prompts.split(args.split)
    acts = capture(
        model,
        prompts,
        args.sites,
        positions=args.positions,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    path = acts.save(args.out)
    print(f"saved {len(acts)} prompts x {len(acts.sites)} sites to {path}")
    return 0
