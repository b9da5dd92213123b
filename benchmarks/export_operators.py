"""Exported runtime operators vs the live patch: max |logit difference| and the planted projection.

For each tiny random-init family and each operator (ablate, clamp 1.5, ablate_add at strength 2),
with a planted unit direction ``u`` at every write (``blocks.0.hook_resid_pre`` and each block's
attention and MLP output) and at every layer (each block's ``resid_pre`` and ``resid_mid``, and
the last ``resid_post``): export, reload with plain ``AutoModelForCausalLM.from_pretrained``,
and print the largest logit difference to ``patch(model, u, op=...)`` and the largest
``|h . u - expected|`` over every block's input (expected: 0 after ablate, 1.5 after clamp, 2
after ablate_add, for the every-layer set). Refused cases print the error. CPU, a few seconds
per family::

    python benchmarks/export_operators.py [--arch llama gpt2 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch

from oyster_steer import patch, testing
from oyster_steer.backends import get_backend, position_ids
from oyster_steer.export import export_patched

PROMPTS = ["How do I bake bread?", "I feel alone tonight."]
ARCHS = ["llama", "qwen2", "phi3", "smollm3", "gpt2", "gpt_neox", "gemma", "qwen3", "gemma2"]
OPS = [("ablate", None, 0.0), ("clamp", 1.5, 1.5), ("ablate_add", None, 2.0)]


def _site_sets(model):
    n = model.n_layers
    writes = ["blocks.0.hook_resid_pre"] + [
        f"blocks.{layer}.hook_{kind}" for layer in range(n) for kind in ("attn_out", "mlp_out")
    ]
    layers = [f"blocks.{layer}.hook_resid_pre" for layer in range(n)]
    if not model.parallel_residual:
        layers += [f"blocks.{layer}.hook_resid_mid" for layer in range(n)]
    return {"every_write": writes, "every_layer": layers + [f"blocks.{n - 1}.hook_resid_post"]}


def measure(arch: str) -> list[dict]:
    from transformers import AutoModelForCausalLM

    model = testing.tiny_model(arch, "hf", seed=0)
    gen = torch.Generator().manual_seed(3)
    u = torch.nn.functional.normalize(torch.randn(model.d_model, generator=gen), dim=0)
    ids, mask = model.encode(PROMPTS)
    real = mask.bool()
    rows = []
    for where, sites in _site_sets(model).items():
        for op, value, expected in OPS:
            vectors = {s: u for s in sites}
            row = {"arch": arch, "sites": where, "op": op}
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "export")
                try:
                    export_patched(model, vectors, out, op=op, value=value, strength=2.0)
                except Exception as err:  # a refusal is a result here
                    rows.append({**row, "refused": f"{type(err).__name__}: {err}"})
                    continue
                with torch.no_grad():
                    handle = patch(model, vectors, 2.0, op=op, value=value)
                    try:
                        live = get_backend("hf").forward(model, ids, mask, [])
                    finally:
                        handle.remove()
                    hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
                    got = hf(
                        input_ids=ids,
                        attention_mask=mask,
                        position_ids=position_ids(mask),
                        use_cache=False,
                        output_hidden_states=True,
                    )
            row["max_abs_logit_diff"] = float((got.logits - live)[real].abs().max())
            if where == "every_layer":
                row["max_projection_error"] = max(
                    float(((h @ u)[real] - expected).abs().max()) for h in got.hidden_states[:-1]
                )
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=ARCHS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for arch in args.arch for row in measure(arch)]
    for row in rows:
        print(json.dumps(row))
    diffs = [r["max_abs_logit_diff"] for r in rows if "max_abs_logit_diff" in r]
    proj = [r["max_projection_error"] for r in rows if "max_projection_error" in r]
    print(
        json.dumps(
            {
                "baked": len(diffs),
                "refused": len(rows) - len(diffs),
                "max_abs_logit_diff": max(diffs),
                "max_projection_error": max(proj),
            }
        )
    )


if __name__ == "__main__":
    main()
