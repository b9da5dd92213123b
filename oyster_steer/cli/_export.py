"""``oyster-steer export``: bake vectors, ablations and a plan's static part into a plain checkpoint."""

from __future__ import annotations

import argparse
from typing import Any

from ..control import load_plan
from ..export._export import ExportError, export_patched
from ..vectors._vector import load_vector
from ._common import add_common, model_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="bake steering into a Hugging Face checkpoint that serves without oyster_steer",
        description="Write a save_pretrained directory (safetensors, config, tokenizer) with steering "
        "vectors baked in as biases and ablated directions orthogonalised out of the weights; it "
        "loads with plain transformers.AutoModelForCausalLM.from_pretrained and serves with vLLM. "
        "See docs/serving.md for the route used per architecture.",
    )
    add_common(p)
    p.add_argument(
        "--vector",
        action="append",
        default=[],
        metavar="PATH",
        help="steering vector file (repeatable; vectors at one site add up)",
    )
    p.add_argument(
        "--strength", type=float, default=None, help="override each vector's recommended strength"
    )
    p.add_argument(
        "--op",
        choices=("add", "ablate", "ablate_add", "clamp"),
        default="add",
        help="the runtime operator the --vector files are applied with (as patch's op=); ablate, "
        "ablate_add and clamp are baked only where a weight edit reproduces them exactly (every write "
        "or every layer; see docs/serving.md), else refused",
    )
    p.add_argument(
        "--value", type=float, default=None, help="with --op clamp: the projection to set"
    )
    p.add_argument(
        "--ablate",
        action="append",
        default=[],
        metavar="PATH",
        help="vector file whose directions are removed from the residual stream (repeatable)",
    )
    p.add_argument(
        "--plan",
        default=None,
        metavar="PATH",
        help="control pack (save_plan); its unconditional part is baked",
    )
    p.add_argument(
        "--allow-conditional",
        action="store_true",
        help="with --plan: write the probe-gated part to control.safetensors beside the checkpoint instead of refusing",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="skip reloading the export and comparing its logits with the hooked model",
    )
    p.set_defaults(func=run)


def _sources(args: argparse.Namespace, model: Any) -> tuple[Any, Any]:
    """(what to bake, what to ablate) from the files named on the command line."""

    vectors = [load_vector(path, model) for path in args.vector]
    ablate = [load_vector(path, model) for path in args.ablate]
    if args.plan:
        if vectors:
            raise ExportError("pass --plan or --vector, not both: a plan carries its own vectors")

        return load_plan(args.plan, model), _merge_ablations(ablate)
    return (vectors or None), _merge_ablations(ablate)


def _merge_ablations(vectors: list[Any]) -> Any:
    """Every direction of every --ablate file, as rows of one (k, d) tensor (or None)."""
    if not vectors:
        return None
    import torch

    return torch.stack([d.float() for v in vectors for d in v.directions.values()])


def run(args: argparse.Namespace) -> int:

    if args.out is None:
        raise ExportError("--out DIR is required: name a new or empty directory for the checkpoint")
    model = model_from_args(args)
    source, ablate = _sources(args, model)
    manifest = export_patched(
        model, source, args.out, strength=args.strength, ablate=ablate, op=args.op, value=args.value,
        allow_conditional=args.allow_conditional, verify=not args.no_verify,
    )  # fmt: skip
    for rec in manifest.baked:
        print(f"baked {rec['site']} -> {rec['module']} ({rec['route']}, |v| = {rec['norm']:.3g})")
    for rec in manifest.operators:
        value = f" {rec['value']:g}" if "value" in rec else ""
        print(f"baked op={rec['op']}{value} at {rec['site']}")
    if manifest.writers:
        print(
            f"edited {len(manifest.writers)} residual writer(s) (weights, and biases where a constant is set)"
        )
    if manifest.ablated:
        print(
            f"ablated {manifest.ablated['rank']} direction(s) from {manifest.ablated['writers']} residual writers ({manifest.ablated['route']})"
        )
    if manifest.control_pack:
        print(
            f"conditional part -> {args.out}/{manifest.control_pack} (re-apply with oyster_steer.patch after loading)"
        )
    if manifest.verification:
        print(
            f"verified: max |logit difference| vs the hooked model = {manifest.verification['max_abs_logit_diff']:.2e}"
        )
    for note in manifest.notes:
        print(f"note: {note}")
    print(f"wrote {manifest.model_type} checkpoint to {args.out}")
    return 0
