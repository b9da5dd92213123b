"""Control-plan overhead, side by side in one run: unpatched vs full plan vs naive python hooks.

* unpatched: the model as loaded.
* plan: a probe-gated :class:`~oyster_steer.ControlPlan` with 3 vectors at every layer's
  resid_post (one fused hook per layer, decisions latched on the device).
* naive: the same decisions written the usual way: one hook per vector per layer that asks the
  host (``.item()``) whether any row is gated before adding its vector.
* spans (``--variants``): the plan with reasoning-span tracking on (``positions="thinking+answer"``,
  think markers given as two token ids, so the state machine runs every pass); ``after_thinking``:
  the same plus ``read="after_thinking"`` (the decision is latched at the end of the thinking).

Two measurements, variants interleaved (A/B/C, A/B/C, ...), median of the repeats:

(a) one decode step of a static-cache model, compiled with ``torch.compile`` (inductor on CPU;
    on GPU ``mode="reduce-overhead"``, i.e. a CUDA-graph replay) and also eager;
(b) whole greedy ``generate`` calls (eager, dynamic cache), for context.

The probe and vectors are random (cost does not depend on their values); ``--pack`` uses a real
control pack instead. Each variant runs on its own copy of the model that shares the weights, so
compiled code for one never sees another's hooks.

Usage:
    python benchmarks/overhead.py                          # CPU, default model, batch 1 and 32
    python benchmarks/overhead.py --gpu --shape llama-1b   # random-init bf16 Llama shapes, CUDA
    python benchmarks/overhead.py --batch 1 --variants unpatched plan spans after_thinking
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import oyster_steer as osteer
from oyster_steer.backends import Hook, get_backend
from oyster_steer.control import ControlPlan, bind, load_plan, patch_plan
from oyster_steer.models._artifacts import model_meta
from oyster_steer.probes._probe import LinearProbe

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _random_models import SHAPES, random_llama  # noqa: E402

PROMPTS = (
    "What is the capital of France?",
    "How do I kill a python process that hangs?",
    "I feel so alone lately and I can't sleep.",
    "Explain how vaccines train the immune system.",
)


def synthetic_plan(model: Any, n_vectors: int = 3, seed: int = 0) -> ControlPlan:
    """A 4-intent probe at the middle layer and ``n_vectors`` random vectors at every layer."""
    g = torch.Generator().manual_seed(seed)
    d, layers = model.d_model, model.n_layers
    site = f"blocks.{layers // 2}.hook_resid_post"
    probe = LinearProbe(
        site,
        ("benign", "borderline", "vulnerable", "malicious"),
        torch.randn(4, d, generator=g) / d**0.5,
        torch.tensor([0.0, 0.0, 3.0, 0.0]),  # mostly "vulnerable": guide, so vectors are added
        torch.zeros(d),
        torch.ones(d),
    )
    binds = [{"guide": 2.0, "redirect": 2.0}, {"redirect": 2.0}, {"guide": 1.0}]
    vectors = [
        bind(
            {
                f"blocks.{i}.hook_resid_post": torch.randn(d, generator=g) / d**0.5
                for i in range(layers)
            },
            binds[k % 3],
            name=f"v{k}",
        )
        for k in range(n_vectors)
    ]
    return ControlPlan(probe, vectors, identity=model_meta(model))


def naive_hooks(model: Any, plan: ControlPlan) -> list[Hook]:
    """The same plan written the usual way: one hook per vector per layer, branching in python.

    The read hook keeps the decision as a device tensor; every write hook asks the host whether
    any row is gated (``.item()``: a sync, and a graph break under ``torch.compile``).
    """
    state: dict[str, torch.Tensor] = {}
    w, b = (t.to(model.device) for t in plan.probe.folded())
    payoff = plan.policy.payoff.to(model.device)

    def read(x: torch.Tensor) -> None:
        if x.shape[1] > 1:  # prompt pass: decide
            eu = torch.softmax(x[:, -1].float() @ w.T + b, -1) @ payoff.T  # (B, S)
            state["gates"] = torch.nn.functional.one_hot(eu.argmax(-1), eu.shape[-1]).float()

    def writer(
        direction: torch.Tensor, strengths: torch.Tensor
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        def write(x: torch.Tensor) -> torch.Tensor:
            if "gates" not in state:
                return x
            scale = state["gates"][: x.shape[0]] @ strengths  # (B,)
            if scale.abs().sum().item() == 0:  # host round-trip per hook per step
                return x
            return x + scale.to(x.dtype).view(-1, 1, 1) * direction

        return write

    hooks = [Hook(osteer.parse_site(plan.probe.site), read)]
    for binding in plan.bindings:
        strengths = torch.tensor(
            [binding.strengths.get(s, 0.0) for s in plan.strategies], device=model.device
        )
        for site, v in binding.directions.items():
            hooks.append(
                Hook(
                    osteer.parse_site(site),
                    writer(v.to(model.device, model.dtype), strengths),
                    write=True,
                )
            )
    return hooks


VARIANTS = ("unpatched", "plan", "naive", "spans", "after_thinking")
MARKERS = (49150, 49151)  # any two ids: the tracker's cost does not depend on which


def variants(
    model: Any, plan: ControlPlan, names: tuple[str, ...] = ("unpatched", "plan", "naive")
) -> dict[str, Any]:
    """name -> an OysterModel on its own module copy (weights shared), patched as named."""
    out = {}
    for name in names:
        hf = (
            model.hf
            if name == "unpatched"
            else copy.deepcopy(model.hf, memo={id(p): p for p in model.hf.parameters()})
        )
        m = osteer.from_hf(hf, model.tokenizer, name=model.name)
        if name == "plan":
            patch_plan(m, plan)
        elif name == "naive":
            get_backend("hf").add_hooks(m, naive_hooks(m, plan))
        elif name in ("spans", "after_thinking"):
            read = "after_thinking" if name == "after_thinking" else plan.read
            spanned = plan.replace(positions="thinking+answer", read=read)
            patch_plan(m, spanned, think_markers=MARKERS)
        out[name] = m
    return out


def batch_inputs(model: Any, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    prompts = [PROMPTS[i % len(PROMPTS)] + " " * (i % 3) for i in range(batch)]
    return model.encode(prompts)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def decode_steps(
    models: dict[str, Any], batch: int, repeats: int, compiled: bool, gpu: bool
) -> dict[str, list[float]]:
    """Seconds per decode step of a static-cache model, per variant, interleaved."""
    from transformers import StaticCache

    steps: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    for name, m in models.items():
        ids, mask = batch_inputs(m, batch)
        t = ids.shape[1]
        cache = StaticCache(config=m.hf.config, max_cache_len=t + 4)
        full = torch.cat(
            [mask, torch.ones(batch, 4, dtype=mask.dtype, device=mask.device)], 1
        )  # (B, T + 4)
        pos = (mask.sum(1, keepdim=True) - 1).clamp(min=0)  # (B, 1)
        with torch.no_grad():
            m.hf(
                input_ids=ids,
                attention_mask=mask,
                position_ids=osteer.backends.position_ids(mask),
                past_key_values=cache,
            )
        fn = (
            torch.compile(m.hf, mode="reduce-overhead" if gpu else None, fullgraph=name != "naive")
            if compiled
            else m.hf
        )
        kwargs = dict(
            input_ids=ids[:, -1:],
            attention_mask=full[:, : t + 1],
            position_ids=pos + 1,
            past_key_values=cache,
        )

        def rewind(
            cache: Any = cache, t: int = t
        ) -> None:  # every timed step decodes position t again
            for layer in cache.layers:
                layer.cumulative_length.fill_(t)
            if compiled and gpu:  # a new CUDA-graph tree step: the last step's outputs are dead
                torch.compiler.cudagraph_mark_step_begin()

        steps[name] = (rewind, lambda fn=fn, kwargs=kwargs: fn(**kwargs).logits)
    return _interleave(steps, repeats, warmup=3, device=next(iter(models.values())).device)


def generate_calls(
    models: dict[str, Any], batch: int, repeats: int, new_tokens: int
) -> dict[str, list[float]]:
    """Seconds per eager greedy ``generate`` call, per variant, interleaved."""
    calls = {}
    for name, m in models.items():
        ids, mask = batch_inputs(m, batch)

        def call(m=m, ids=ids, mask=mask):
            return m.hf.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=m.pad_id,
            )

        calls[name] = (lambda: None, call)
    return _interleave(calls, repeats, warmup=1, device=next(iter(models.values())).device)


def _interleave(
    fns: dict[str, tuple[Callable[[], Any], Callable[[], Any]]],
    repeats: int,
    warmup: int,
    device: torch.device,
) -> dict[str, dict[str, list[float]]]:
    """Run every variant ``repeats`` times in rotating order; (untimed reset, timed call) pairs.

    Records wall time and this process's CPU time: on a shared machine the CPU time of a
    single-threaded run is the cleaner measure of the work done.
    """
    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in fns}
    names = list(fns)
    with torch.no_grad():
        for _ in range(warmup):
            for name in names:
                fns[name][0]()
                fns[name][1]()
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
                fns[name][0]()
                _sync(device)
                wall, cpu = time.perf_counter(), time.process_time()
                fns[name][1]()
                _sync(device)
                times[name]["cpu"].append(time.process_time() - cpu)
                times[name]["wall"].append(time.perf_counter() - wall)
    return times


def summarize(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Median and IQR per variant and clock, and the median's overhead over ``unpatched``."""
    out: dict[str, dict[str, float]] = {}
    for name, clocks in times.items():
        row: dict[str, float] = {"n": len(clocks["wall"])}
        for clock, ts in clocks.items():
            base = statistics.median(times["unpatched"][clock])
            q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
            row[f"{clock}_median_ms"] = round(1e3 * statistics.median(ts), 3)
            row[f"{clock}_iqr_ms"] = round(1e3 * (q[2] - q[0]), 3)
            row[f"{clock}_overhead_pct"] = round(100 * (statistics.median(ts) / base - 1), 2)
            if "plan" in times and name not in ("unpatched", "plan"):  # e.g. span tracking's cost
                plan = statistics.median(times["plan"][clock])
                row[f"{clock}_over_plan_pct"] = round(100 * (statistics.median(ts) / plan - 1), 2)
        out[name] = row
    return out


def markdown(report: dict[str, Any]) -> str:
    """The results as a markdown table (for BENCHMARKS.md)."""
    lines = [
        "| measurement | variant | CPU ms (median) | CPU IQR ms | CPU overhead | wall ms (median) | wall overhead | n |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, rows in report["results"].items():
        for name, r in rows.items():
            vs_plan = (
                f" ({r['cpu_over_plan_pct']:+.2f}% over plan)" if "cpu_over_plan_pct" in r else ""
            )
            lines.append(
                f"| {label} | {name} | {r['cpu_median_ms']:.1f} | {r['cpu_iqr_ms']:.1f} | {r['cpu_overhead_pct']:+.1f}%{vs_plan} "
                f"| {r['wall_median_ms']:.1f} | {r['wall_overhead_pct']:+.1f}% | {r['n']} |"
            )
    return "\n".join(lines)


def load(args: argparse.Namespace) -> Any:
    if args.model in SHAPES:  # e.g. llama-tiny: the --gpu code path on a CPU, in seconds
        return random_llama(args.model, "cuda" if args.gpu else "cpu")
    if args.model == "tiny":  # smoke test of this script
        from oyster_steer.testing import tiny_model

        return tiny_model("llama")
    if not args.gpu:
        return osteer.load_model(args.model, device="cpu")
    return random_llama(args.shape, "cuda")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--model",
        default=osteer.DEFAULT_MODEL,
        help="model name, 'tiny' for a smoke test, or a random-init shape (e.g. llama-tiny)",
    )
    p.add_argument(
        "--pack",
        default=None,
        help="a control pack to benchmark instead of the synthetic 3-vector plan",
    )
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument(
        "--repeats", type=int, default=60, help="decode-step repeats per variant (>= 50)"
    )
    p.add_argument("--gen-repeats", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument(
        "--gpu",
        action="store_true",
        help="random-init bf16 Llama shapes on CUDA, CUDA-graph decode",
    )
    p.add_argument("--shape", choices=sorted(SHAPES), default="llama-1b")
    p.add_argument("--skip-eager-step", action="store_true")
    p.add_argument(
        "--skip-compiled-step",
        action="store_true",
        help="no compiled decode step (inductor compiles each variant: minutes on a loaded CPU)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: CPU time is then clean)",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=["unpatched", "plan", "naive"],
        help="what to compare (unpatched is the baseline and always runs)",
    )
    p.add_argument(
        "--compiled-variants",
        nargs="+",
        choices=VARIANTS,
        default=None,
        help="compile only these for the compiled decode step (default: all of --variants; "
        "on a GPU 'naive' breaks the graph at every hook and compiles for minutes)",
    )
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    p.add_argument(
        "--table", default=None, help="print the markdown table of a saved JSON report and exit"
    )
    args = p.parse_args()
    if args.table:
        with open(args.table) as f:
            print(markdown(json.load(f)))
        return

    torch.set_num_threads(args.threads)
    torch._dynamo.config.skip_nnmodule_hook_guards = False
    torch._dynamo.config.cache_size_limit = 64
    model = load(args)
    plan = load_plan(args.pack, model) if args.pack else synthetic_plan(model)
    names = tuple(dict.fromkeys(["unpatched", *args.variants]))
    models = variants(model, plan, names)
    report: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if args.gpu else ""),
        "command": "python benchmarks/overhead.py " + " ".join(sys.argv[1:]),
        "load_average": os.getloadavg(),
        "model": model.name,
        "plan": f"{len(plan.bindings)} vectors x {len(plan.sites)} sites, probe at {plan.probe.site.name}, {plan.policy.mode} gates",
        "results": {},
    }
    for batch in args.batch:
        modes = ([] if args.skip_compiled_step else [("decode step, compiled", True)]) + (
            [] if args.skip_eager_step else [("decode step, eager", False)]
        )
        for label, compiled in modes:
            start = time.time()
            keep = set(args.compiled_variants or names) | {"unpatched"} if compiled else set(names)
            subset = {k: v for k, v in models.items() if k in keep}
            res = summarize(decode_steps(subset, batch, args.repeats, compiled, args.gpu))
            report["results"][f"{label}, batch {batch}"] = res
            print(f"{label}, batch {batch} ({time.time() - start:.0f} s):", json.dumps(res))
        res = summarize(generate_calls(models, batch, args.gen_repeats, args.new_tokens))
        report["results"][f"generate {args.new_tokens} tokens, eager, batch {batch}"] = res
        print(f"generate, batch {batch}:", json.dumps(res))
    report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
