"""Strength calibration: what larger batches, and strengths stacked in one batch, buy on this machine.

The steered strengths of a calibration are new work each (the margins' teacher forcing of blocks
L..n-1 and the LM head at every reply token, the benign KL's full-vocabulary log-softmax). Two
ways to run them in fewer, larger passes, measured interleaved, round after round:

* ``calibrate_strength(..., batch_size=B)`` for B in 16 (the default), 48, 96: the whole
  calibration of one vector (the shipped grid 0.5, 1, 2, 4, 8 + 0; material included), with the
  largest difference of its curve (KL and mean margins) from the batch-16 curve;
* the margins' teacher forcing alone, from the cached lower blocks, either once per strength
  (``score_groups`` per strength at batch 16 or 48) or with the strengths stacked along the batch
  (every group repeated once per strength, batch ``48``): the same passes a batched-strength
  path would run (the per-row strength x vector add left out; it is one elementwise add).

    python benchmarks/calibration_batch.py --threads 1
    python benchmarks/calibration_batch.py --threads 1 --where   # one strength's margins, split

``--where`` instead splits the margins' teacher forcing at one strength (batch 16, both intents,
3 repeats) into the upper blocks, the LM head's matmul and the log-softmax + gather.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture import load, machine  # noqa: E402

GRID = (0.5, 1.0, 2.0, 4.0, 8.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2", choices=("smollm2", "tiny"))
    p.add_argument("--n", type=int, default=8, help="prompts per intent (the shipped recipe: 8)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--where", action="store_true", help="split one strength's margins instead")
    p.add_argument("--batches", default="16,48,96", help="calibrate_strength batch sizes")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from oyster_steer.activations._scoring import frozen_inputs, score_groups
    from oyster_steer.core._sites import parse_site
    from oyster_steer.data import load_starter
    from oyster_steer.data._contrast import records_of
    from oyster_steer.steering._calibrate import _target_groups, calibrate_strength
    from oyster_steer.vectors._vector import SteeringVector

    model = load(args.model, "hf", "cpu")
    data = load_starter()
    site = "blocks.12.hook_resid_post" if args.model != "tiny" else "blocks.1.hook_resid_post"
    gen = torch.Generator().manual_seed(0)
    vec = SteeringVector.from_tensors(
        model, {site: torch.randn(model.d_model, generator=gen)}, method="mean_diff"
    )
    groups = _target_groups(model, records_of(data), "constructive", args.n, 96, 48, 0)
    layer = parse_site(site).layer
    frozen = {i: frozen_inputs(model, gs, layer) for i, gs in groups.items()}
    s = len(GRID)
    if args.where:
        return where(model, groups, frozen, args)

    def calibrate(bs: int) -> Any:
        c = calibrate_strength(
            model, vec, data, GRID, n_per_intent=args.n, batch_size=bs, progress=False
        )
        return torch.tensor([*c.kl, *c.margin()])

    def per_strength(bs: int) -> None:
        for _ in range(s):
            for i, gs in groups.items():
                score_groups(model, gs, batch_size=bs, hidden=frozen[i], share_head=True)

    def stacked(bs: int) -> None:
        for i, gs in groups.items():
            score_groups(model, gs * s, batch_size=bs, hidden=frozen[i] * s, share_head=True)

    todo: dict[str, Any] = {
        f"calibrate_strength, batch {b}": (lambda b=b: calibrate(b))
        for b in map(int, args.batches.split(","))
    }
    todo |= {
        "margins: per strength, batch 16": lambda: per_strength(16),
        "margins: per strength, batch 48": lambda: per_strength(48),
        f"margins: {s} strengths stacked, batch 48": lambda: stacked(48),
    }
    times: dict[str, list[float]] = {}
    outs: dict[str, Any] = {}
    for round_ in range(args.repeats):
        names = list(todo) if round_ % 2 == 0 else list(todo)[::-1]
        for name in names:
            cpu = time.process_time()
            outs[name] = todo[name]()
            times.setdefault(name, []).append(time.process_time() - cpu)
        print(f"round {round_ + 1}/{args.repeats} done", file=sys.stderr)
    ref_cal = next(iter(todo))
    rows = [
        "| job | CPU s (median) | speed-up, CPU | max abs diff of the curve |",
        "|---|---:|---:|---:|",
    ]
    for name in todo:
        base = ref_cal if name.startswith("calibrate") else "margins: per strength, batch 16"
        speed = statistics.median(times[base]) / statistics.median(times[name])
        diff = (
            f"{float((outs[name] - outs[ref_cal]).abs().max()):.1e}"
            if name.startswith("calibrate")
            else ""
        )
        rows.append(f"| {name} | {statistics.median(times[name]):.1f} | {speed:.2f}x | {diff} |")
    command = f"python benchmarks/calibration_batch.py --n {args.n} --repeats {args.repeats}"
    command += f" --threads {args.threads}" if args.threads else ""
    command += " --model tiny" if args.model == "tiny" else ""
    print(
        f"{model.name}, steered site `{site}`, {args.n} prompts per intent, strengths "
        f"{', '.join(map(str, GRID))} + 0. Median of {args.repeats} interleaved rounds.\n\n"
        f"Machine: {machine()}.\n\nCommand: `{command}`\n\n" + "\n".join(rows)
    )
    return 0


def _log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, -1).gather(-1, targets[:, None])


def where(model: Any, groups: Any, frozen: Any, args: argparse.Namespace) -> int:
    """CPU seconds of the upper blocks, the LM head and the log-softmax in ``reply_logprobs``."""
    from oyster_steer.activations import _scoring

    spent = {"blocks L..n-1 (prompt, head, reply passes)": 0.0, "LM head matmul": 0.0}
    spent["log-softmax + gather"] = 0.0

    def timed(name: str, fn: Any, *a: Any) -> Any:
        cpu = time.process_time()
        out = fn(*a)
        spent[name] += time.process_time() - cpu
        return out

    keys = list(spent)
    with torch.no_grad():
        for _ in range(3):
            for i, gs in groups.items():
                for chunk in _scoring._length_batches(gs, 16):
                    p = _scoring.pack(
                        [gs[k] for k in chunk],
                        model.pad_id,
                        model.device,
                        [frozen[i][k] for k in chunk],
                        share_head=True,
                    )
                    pm = p.prompt_mask
                    mask = torch.cat([pm[p.owner], p.reply_mask], dim=1)
                    start = pm.sum(1)[p.owner].unsqueeze(1)
                    pos = start + torch.arange(p.reply_ids.shape[1])
                    h = timed(keys[0], _scoring._two_passes_from, model, p, mask, pos)
                    z = timed(keys[1], _scoring.head_logits, model, h).float()
                    timed(keys[2], _log_probs, z, p.targets)
    total = sum(spent.values())
    print(
        f"Machine: {machine()}.\n\nCommand: `python benchmarks/calibration_batch.py --n {args.n} --where --threads 1`\n"
    )
    print("| part of one strength's margins (x3) | CPU s | share |\n|---|---:|---:|")
    for name, sec in spent.items():
        print(f"| {name} | {sec:.2f} | {100 * sec / total:.0f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
