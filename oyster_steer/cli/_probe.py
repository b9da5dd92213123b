"""``oyster-steer train-probe``: the shipped risk and intent probes, and their RESULTS.md section.

One command reproduces ``probes/<model>/risk.safetensors`` and ``intent.safetensors``: build
the splits (starter set + shared data + wrapped copies), capture every split once at every
layer (cached under ``runs/``), sweep the layers, keep the best on validation, calibrate on
validation, save; with ``--report`` it also scores the test split against the MiniLM baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..activations._cache import cached_capture
from ..probes._data import probe_splits
from ..probes._probe import save_probe
from ..probes._sweep import sweep_activations, task_labels
from ..reproduce._probe_report import write_section
from ..reproduce._probe_results import build_report
from ._common import add_common, data_from_args, model_from_args, positive_int

# task -> metric the layer is chosen by (on validation)
_SELECT = {"risk": "auroc", "intent": "macro_f1"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-probe",
        help="train, calibrate and save the risk and intent probes (optionally score them into RESULTS.md)",
        description="Sweep every layer, keep the best on validation, calibrate, save probes/<model>/<task>.safetensors.",
    )
    add_common(p, out=None)
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["risk", "intent"],
        choices=sorted(_SELECT),
        help="probes to train (default: risk intent)",
    )
    p.add_argument(
        "--sites",
        nargs="+",
        default=None,
        help="sites to sweep (default: resid_post at every second layer from 4 to 80%% of the "
        "depth, layers 4, 6, ..., 24 of SmolLM2's 30; 'resid_post' for every layer)",
    )
    p.add_argument(
        "--fpr",
        type=float,
        default=0.05,
        help="risk threshold: share of validation non-malicious prompts flagged (default 0.05)",
    )
    p.add_argument(
        "--wrap-fraction",
        type=float,
        default=0.25,
        help="share of short prompts also added jailbreak-wrapped (default 0.25)",
    )
    p.add_argument(
        "--train-attacks",
        nargs="+",
        default=None,
        metavar="INTENT=SHARE",
        help="add a second seeded attack transform around this share of each named intent's short "
        "plain train prompts (e.g. benign=0.5 vulnerable=0.6; validation and test unchanged)",
    )
    p.add_argument(
        "--train-wraps",
        nargs="+",
        default=None,
        metavar="INTENT=SHARE",
        help="the same with a second jailbreak template wrap (WRAPPER_TEMPLATES)",
    )
    p.add_argument(
        "--no-shift-data",
        action="store_true",
        help="leave out the lookalike and jailbreak sets (phtest, CoCoNot contrast, JBB artifacts, in-the-wild) and train on load_all() only, as the first shipped probes did",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=Path("runs/capture-cache"),
        help="capture cache directory (default runs/capture-cache)",
    )
    p.add_argument(
        "--gate-max-layer",
        type=int,
        default=12,
        help="the intent (gating) probe is chosen among layers <= this one (default 12: the first "
        "layer the shipped pack writes, so the decision exists before any write of the prompt pass)",
    )
    p.add_argument(
        "--pool",
        choices=("last", "mean", "last+mean"),
        default="last",
        help="prompt features the probes are fit on: the last prompt token (default), the mean "
        "over every chat-formatted prompt token, or both side by side (last+mean; recorded in "
        "the probes; a control pack built from them reads read=<pool>)",
    )
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also score the test split and write the '## Probes' section of this file",
    )
    p.add_argument(
        "--no-baseline", action="store_true", help="skip the MiniLM baseline in the report"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    start = time.time()
    model = model_from_args(args)
    sites = args.sites or default_sweep_sites(model.n_layers)
    data = probe_splits(
        data_from_args(args),
        wrap_fraction=args.wrap_fraction,
        shift_data=not args.no_shift_data,
        data_dir=args.data,
        train_attacks=_intent_shares(args.train_attacks),
        train_wraps=_intent_shares(args.train_wraps, "--train-wraps"),
    )
    splits = {name: data.split(name) for name in ("train", "validation", "test")}
    acts = {
        name: cached_capture(
            model,
            ps.texts,
            sites,
            pool=args.pool,
            root=args.cache,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
        for name, ps in splits.items()
    }
    captured = time.time()
    out_dir = args.out or Path("probes") / model.name
    results: dict[str, Any] = {
        "data": data.description,
        "model": model.name,
        "n_layers": model.n_layers,
        "out_dir": str(out_dir),
        "command": "oyster-steer train-probe"
        + (f" --pool {args.pool}" if args.pool != "last" else "")
        + (f" --sites {' '.join(args.sites)}" if args.sites else "")
        + (f" --tasks {' '.join(args.tasks)}" if args.tasks != ["risk", "intent"] else "")
        + (f" --train-attacks {' '.join(args.train_attacks)}" if args.train_attacks else "")
        + (f" --train-wraps {' '.join(args.train_wraps)}" if args.train_wraps else "")
        + (f" --report {args.report}" if args.report else ""),
        "tasks": {},
        "timing": {
            "capture_s": captured - start,
            "captured_now": sum(int(a.meta["captured_now"]) for a in acts.values()),
            "prompts": sum(len(a) for a in acts.values()),
            "tokens": sum(_n_tokens(model, ps.texts) for ps in splits.values()),
        },
    }
    for task_name in args.tasks:
        labels = {name: task_labels(task_name, ps)[0] for name, ps in splits.items()}
        task = task_labels(task_name, splits["train"][:1])[1]
        fpr = args.fpr if task_name == "risk" else None
        sweep = sweep_activations(acts, labels, task, progress=not args.quiet, target_fpr=fpr)
        limit = args.gate_max_layer if task_name == "intent" else None
        choice = sweep.best(_SELECT[task_name], "validation", max_layer=limit)
        meta = {
            "task": task_name,
            "pool": args.pool,
            "capture_sites": ",".join(sites),
            "data": json.dumps(data.description),
            "chosen_by": f"validation {_SELECT[task_name]}"
            + (f", layer <= {limit}" if limit is not None else ""),
            "sweep": json.dumps(_compact(sweep.table())),
        }
        probe = replace(choice.probe, meta=choice.probe.meta | meta)
        path = save_probe(probe, out_dir / f"{task_name}.safetensors", model)
        print(
            f"{task_name}: {choice.site.name} (validation {_SELECT[task_name]} {choice.metrics['validation'][_SELECT[task_name]]:.3f}) -> {path}"
        )
        results["tasks"][task_name] = {"probe": probe, "sweep": sweep, "labels": labels}
    results["timing"]["train_s"] = time.time() - captured
    if args.report:
        body = build_report(
            model,
            splits,
            acts,
            results,
            baseline=not args.no_baseline,
            cache=args.cache,
            progress=not args.quiet,
        )
        write_section(args.report, body)
        print(f"wrote the '## Probes' section of {args.report}")
    print(f"done in {time.time() - start:.0f} s")
    return 0


def _intent_shares(
    items: list[str] | None, flag: str = "--train-attacks"
) -> dict[str, float] | None:
    """``["benign=0.5", ...]`` -> ``{"benign": 0.5, ...}`` (None stays None)."""
    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        name, _, share = item.partition("=")
        try:
            out[name] = float(share)
        except ValueError:
            raise SystemExit(
                f"{flag} {item!r} is not INTENT=SHARE: write e.g. benign=0.5"
            ) from None
    return out


def default_sweep_sites(n_layers: int) -> list[str]:
    """``resid_post`` at every second layer from 4 to 80% of the depth (the capture stops there).

    Example:
        >>> default_sweep_sites(30)[:2], default_sweep_sites(30)[-1]
        (['blocks.4.hook_resid_post', 'blocks.6.hook_resid_post'], 'blocks.24.hook_resid_post')
    """
    top = max(1, int(0.8 * n_layers))
    return [f"blocks.{k}.hook_resid_post" for k in range(min(4, top), top + 1, 2)]


def capture_sites(probe: Any, n_layers: int) -> list[str]:
    """The sites ``train-probe`` captured a probe's features at (its capture-cache directory):
    ``meta["capture_sites"]``, else the default sweep."""
    recorded = probe.meta.get("capture_sites")
    return recorded.split(",") if recorded else default_sweep_sites(n_layers)


def probe_features(
    model: Any, probe: Any, texts: list[str], cache: Path, progress: bool = False
) -> torch.Tensor:
    """(N, d) float32 features ``probe`` reads for ``texts`` (its pool, its site), from the
    ``train-probe`` capture cache under ``cache`` (missing rows are captured and cached)."""
    acts = cached_capture(
        model,
        texts,
        capture_sites(probe, model.n_layers),
        pool=probe.pool,
        root=cache,
        progress=progress,
    )
    return acts[probe.site.name].float()


def _n_tokens(model: Any, texts: list[str]) -> int:
    """Chat-formatted prompt tokens: what a cold capture has to run through the model."""
    tok = model.tokenizer
    return sum(len(tok(model.format_chat(t), add_special_tokens=False)["input_ids"]) for t in texts)


def _compact(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("layer", "validation_auroc", "validation_macro_f1", "test_auroc", "test_macro_f1")
    return [
        {k: round(r[k], 4) if isinstance(r[k], float) else r[k] for k in keep if k in r}
        for r in rows
    ]
