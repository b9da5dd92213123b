"""train_vector vs steering-vectors 0.12.2 (its defaults) on the same 64 pairs, SmolLM2 layer 12.

steering-vectors needs transformers<5, so it runs in a subprocess over the transformers 4.57.6
overlay that ``tests/_legacy.py`` builds once (``cache_dir()/envs``). Prints the cosine, the norm
ratio and both wall times.

    python benchmarks/steering_vectors_parity.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _legacy import run_legacy  # noqa: E402

import oyster_steer as osteer  # noqa: E402
from oyster_steer.data import contrast_triples, load_starter  # noqa: E402
from oyster_steer.models._model import converted_dir  # noqa: E402

CODE = """
import time, torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from steering_vectors import train_steering_vector
tok = AutoTokenizer.from_pretrained(ARGS["path"])
hf = AutoModelForCausalLM.from_pretrained(ARGS["path"], torch_dtype=torch.float32).eval()
start = time.perf_counter()
sv = train_steering_vector(hf, tok, [tuple(p) for p in ARGS["pairs"]], layers=[12], show_progress=False)
RESULT = {"seconds": time.perf_counter() - start}
save_file({str(k): v.contiguous() for k, v in sv.layer_activations.items()}, ARGS["out"])
"""


def main() -> None:
    model = osteer.load_model(device="cpu")
    triples = contrast_triples(load_starter(), "constructive")[:64]
    pairs = [(model.format_chat(p) + a, model.format_chat(p) + b) for p, a, b in triples]
    start = time.perf_counter()
    ours = osteer.train_vector(
        model,
        pairs,
        method="mean_diff",
        read="last",
        sites="blocks.12.hook_resid_post",
        progress=False,
    )
    our_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:  # the subprocess may take minutes on a busy CPU
        out = str(Path(tmp) / "sv.safetensors")
        got = run_legacy(
            CODE, path=str(converted_dir("smollm2-135m-instruct")), pairs=pairs, out=out
        )
        theirs = osteer.load_steering_vectors(out, model)
    a = ours.directions["blocks.12.hook_resid_post"]
    b = theirs.directions["blocks.12.hook_resid_post"]
    print(
        json.dumps(
            {
                "pairs": len(pairs),
                "cosine": float(torch.nn.functional.cosine_similarity(a, b, dim=0)),
                "norm_ratio": float(a.norm() / b.norm()),
                "oyster_steer_s": round(our_s, 2),
                "steering_vectors_s": round(got["seconds"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
