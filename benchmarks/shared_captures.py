"""mean_diff and pca on the same contrasts (what ``train-vector --shipped`` trains): captured
separately vs once inside ``vectors._train.shared_activations`` (64 training prompts per intent,
site ``blocks.12.hook_resid_post``: the shipped recipe's). Prints CPU and wall seconds, the
speed-up, and whether both vectors (and their metadata) are identical.

    python benchmarks/shared_captures.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    import oyster_steer
    from oyster_steer.data import load_all
    from oyster_steer.vectors._train import shared_activations, train_vector

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-per-intent", type=int, default=64)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = oyster_steer.load_model(device="cpu")
    data = load_all().split("train")
    kw: dict[str, Any] = dict(
        sites="blocks.12.hook_resid_post",
        n_per_intent=args.n_per_intent,
        progress=False,
        description="train split",
    )

    def run(shared: bool) -> tuple[dict[str, Any], float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with shared_activations() if shared else contextlib_null():
            v = {m: train_vector(model, data, method=m, **kw) for m in ("mean_diff", "pca")}
        return v, time.perf_counter() - wall, time.process_time() - cpu

    train_vector(model, data, method="mean_diff", **(kw | {"n_per_intent": 4}))  # warm-up
    b, wall_b, cpu_b = run(True)  # shared first: the separate run gets no warmer process
    a, wall_a, cpu_a = run(False)
    same = all(
        torch.equal(a[m].directions[s], b[m].directions[s]) and a[m].meta == b[m].meta
        for m in a
        for s in a[m].directions
    )
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"separate: cpu {cpu_a:.1f} s, wall {wall_a:.1f} s; shared: cpu {cpu_b:.1f} s, wall "
        f"{wall_b:.1f} s; speed-up, CPU {cpu_a / cpu_b:.2f}x; vectors identical: {same}; "
        f"load average {load}"
    )


def contextlib_null() -> Any:
    import contextlib

    return contextlib.nullcontext()


if __name__ == "__main__":
    main()
