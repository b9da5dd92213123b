"""Interop with older transformers and with steering-vectors, in a transformers 4.57 subprocess.

The overlay (``tests/_legacy.py``) is built once per machine and cached; these tests are slow.
"""

from __future__ import annotations

import pytest
import torch
from _legacy import run_legacy

from oyster_steer.data import contrast_triples, load_starter
from oyster_steer.export import export_patched
from oyster_steer.models._model import converted_dir
from oyster_steer.vectors import SteeringVector, train_vector

pytestmark = pytest.mark.slow

LOAD_AND_RUN = """
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(ARGS["path"])
hf = AutoModelForCausalLM.from_pretrained(ARGS["path"], torch_dtype=torch.float32).eval()
ids = tok(ARGS["text"], return_tensors="pt")["input_ids"]
with torch.no_grad():
    logits = hf(ids).logits[0, -1]
    out = hf.generate(ids, max_new_tokens=8, do_sample=False)
RESULT = {
    "rope_theta": float(hf.config.rope_theta),
    "tokenizer": type(tok).__name__,
    "ids": ids[0].tolist(),
    "generated": out[0].tolist(),
    "logits": logits.tolist(),
}
"""

TEXT = "<|im_start|>user\nI feel like nobody would notice if I was gone.<|im_end|>\n<|im_start|>assistant\n"


def _ours(path: str) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = tok(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = hf(ids).logits[0, -1]
        out = hf.generate(ids, max_new_tokens=8, do_sample=False)
    return {"ids": ids[0].tolist(), "generated": out[0].tolist(), "logits": logits}


def test_the_cached_default_model_loads_the_same_in_transformers_4(smollm):
    path = str(converted_dir("smollm2-135m-instruct"))
    old, new = run_legacy(LOAD_AND_RUN, path=path, text=TEXT), _ours(path)
    assert old["rope_theta"] == 100000.0  # without the legacy field 4.x silently used 10000
    assert old["ids"] == new["ids"] and old["generated"] == new["generated"]
    torch.testing.assert_close(torch.tensor(old["logits"]), new["logits"], atol=2e-3, rtol=1e-3)


def test_an_export_loads_the_same_in_transformers_4(smollm, tmp_path):
    site = "blocks.12.hook_resid_post"
    gen = torch.Generator().manual_seed(0)
    v = SteeringVector.from_tensors(
        smollm, {site: 2.0 * torch.randn(smollm.d_model, generator=gen)}
    )
    export_patched(smollm, v, tmp_path / "out")
    old, new = (
        run_legacy(LOAD_AND_RUN, path=str(tmp_path / "out"), text=TEXT),
        _ours(str(tmp_path / "out")),
    )
    assert old["rope_theta"] == 100000.0 and old["tokenizer"] == "PreTrainedTokenizerFast"
    assert old["ids"] == new["ids"] and old["generated"] == new["generated"]
    torch.testing.assert_close(torch.tensor(old["logits"]), new["logits"], atol=2e-3, rtol=1e-3)


STEERING_VECTORS = """
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from steering_vectors import train_steering_vector
tok = AutoTokenizer.from_pretrained(ARGS["path"])
hf = AutoModelForCausalLM.from_pretrained(ARGS["path"], torch_dtype=torch.float32).eval()
pairs = [tuple(p) for p in ARGS["pairs"]]
sv = train_steering_vector(hf, tok, pairs, layers=[ARGS["layer"]], show_progress=False)  # defaults
save_file({str(k): v.contiguous() for k, v in sv.layer_activations.items()}, ARGS["out"])
RESULT = {"layer_type": sv.layer_type}
"""


def test_train_vector_matches_steering_vectors_default(smollm, tmp_path):
    """The same 64 pairs, last token, mean difference: steering-vectors 0.12.2's defaults."""
    from oyster_steer.vectors import load_steering_vectors

    triples = contrast_triples(load_starter(), "constructive")[:64]
    pairs = [(smollm.format_chat(p) + pos, smollm.format_chat(p) + neg) for p, pos, neg in triples]
    assert len(pairs) == 64
    ours = train_vector(
        smollm,
        pairs,
        method="mean_diff",
        read="last",
        sites="blocks.12.hook_resid_post",
        progress=False,
    )
    out = tmp_path / "sv.safetensors"
    got = run_legacy(
        STEERING_VECTORS,
        path=str(converted_dir("smollm2-135m-instruct")),
        pairs=pairs,
        layer=12,
        out=str(out),
    )
    assert got["layer_type"] == "decoder_block"
    theirs = load_steering_vectors(out, smollm)  # their state, read from safetensors
    a, b = (
        ours.directions["blocks.12.hook_resid_post"],
        theirs.directions["blocks.12.hook_resid_post"],
    )
    cos = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    assert cos >= 0.9999, cos
    torch.testing.assert_close(a.norm(), b.norm(), rtol=1e-3, atol=0)
