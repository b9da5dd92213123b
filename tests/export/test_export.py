"""export_patched: baked checkpoints reproduce the hooked model, load with plain transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oyster_steer import (
    EmptyInputError,
    ModelMismatchError,
    SiteError,
    SteeringVector,
    WidthMismatchError,
    from_hf,
)
from oyster_steer.backends import Hook, get_backend, position_ids
from oyster_steer.export._bake import residual_writers
from oyster_steer.export._export import MANIFEST_NAME, ExportError, ExportManifest, export_patched
from oyster_steer.export._routes import export_route
from oyster_steer.testing import TINY_ARCHITECTURES, default_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ALL = {
    "blocks.1.hook_resid_post": "mlp_bias",
    "blocks.1.hook_mlp_out": "mlp_bias",
    "blocks.2.hook_resid_pre": "mlp_bias",
    "blocks.0.hook_attn_out": "attn_bias",
    "blocks.2.hook_resid_mid": "attn_bias",
    "blocks.0.hook_resid_pre": "embedding_rows",
}
NO_MID = {k: v for k, v in ALL.items() if "resid_mid" not in k}
ATTN_ONLY = {k: v for k, v in ALL.items() if v != "mlp_bias"}
EMBED_ONLY = {"blocks.0.hook_resid_pre": "embedding_rows"}
# arch -> (site -> expected route, exported model_type)
EXPECTED = {
    "llama": (ALL, "llama"),
    "qwen2": (ALL, "llama"),
    "mistral": (ALL, "llama"),
    "phi3": (ALL, "llama"),
    "qwen3": (ATTN_ONLY, "qwen3"),
    "smollm3": (ALL, "smollm3"),
    "gemma": (ATTN_ONLY, "gemma"),
    "gemma2": (EMBED_ONLY, "gemma2"),
    "gemma3": (EMBED_ONLY, "gemma3_text"),
    "gpt2": (ALL, "gpt2"),
    "gpt_neox": (NO_MID, "gpt_neox"),
    "gpt_neox_sequential": (ALL, "gpt_neox"),
}
PROMPTS = ["How do I bake bread?", "I feel alone tonight."]


def test_every_tiny_architecture_has_an_expectation():
    assert set(EXPECTED) == set(TINY_ARCHITECTURES)


def _vectors(model, sites, seed=1, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    return {s: scale * torch.randn(model.d_model, generator=gen) for s in sites}


def _hooked_logits(model, ids, mask, hooks):
    with torch.no_grad():
        return get_backend("hf").forward(model, ids, mask, hooks)


def _adds(vectors):
    from oyster_steer import parse_site

    return [Hook(parse_site(s), _adder(v), write=True) for s, v in vectors.items()]


def _adder(vec):
    return lambda h: h + vec


def _projects(model, r):
    """Directional ablation as hooks: project r (d, k orthonormal) out of every residual write."""
    from oyster_steer import Site

    sites = [Site(0, "resid_pre")] + [
        Site(i, k) for i in range(model.n_layers) for k in ("attn_out", "mlp_out")
    ]
    return [Hook(s, lambda h: h - (h @ r) @ r.T, write=True) for s in sites]


def _load(out_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32).eval()


def _logits(hf, ids, mask, **kw):
    with torch.no_grad():
        return hf(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids(mask),
            use_cache=False,
            **kw,
        )


def _max_diff(a, b, mask):
    return float((a - b).detach()[mask.bool()].abs().max())


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_baked_vectors_equal_hooks(tiny_models, arch, tmp_path):
    model = tiny_models(arch)
    routes, model_type = EXPECTED[arch]
    vectors = _vectors(model, routes)
    manifest = export_patched(model, vectors, tmp_path, verify=False)
    assert manifest.model_type == model_type
    assert {r["site"]: r["route"] for r in manifest.baked} == routes
    ids, mask = model.encode(PROMPTS)
    want = _hooked_logits(model, ids, mask, _adds(vectors))
    got = _logits(_load(tmp_path), ids, mask).logits
    assert _max_diff(got, want, mask) <= 1e-4
    assert _max_diff(want, _hooked_logits(model, ids, mask, []), mask) > 1e-2  # the vectors matter


@torch.no_grad()
def _assert_writers_orthogonal(model, r):
    """||u^T W|| ~ 0 for every residual writer; u = r, or the norm-scaled r behind a post norm."""
    route = export_route(model.model_type)
    for path, norm in residual_writers(model, route):
        module = model.hf.get_submodule(path)
        u = r if norm is None else (route.norm_offset + model.hf.get_submodule(norm).weight) * r
        weight = module.weight.T if type(module).__name__ == "Conv1D" else module.weight
        along = weight @ u if isinstance(module, torch.nn.Embedding) else u @ weight
        assert float(along.norm()) <= 1e-5 * float(weight.norm()), path
        if getattr(module, "bias", None) is not None:
            assert abs(float(module.bias @ u)) <= 1e-6, path


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_ablation_removes_direction_from_every_writer(tiny_models, arch, tmp_path):
    model = tiny_models(arch)
    r = torch.nn.functional.normalize(
        torch.randn(model.d_model, generator=torch.Generator().manual_seed(3)), dim=0
    )
    manifest = export_patched(model, None, tmp_path, ablate=r, verify=False)
    exported = from_hf(_load(tmp_path), default_tokenizer())
    _assert_writers_orthogonal(exported, r)
    ids, mask = model.encode(PROMPTS)
    out = _logits(exported.hf, ids, mask, output_hidden_states=True)
    for layer, h in enumerate(out.hidden_states[: model.n_layers]):  # the input of every block
        assert float((h @ r)[mask.bool()].abs().max()) <= 1e-5 * float(
            h[mask.bool()].abs().max()
        ), layer
    if manifest.ablated["exact"]:
        want = _hooked_logits(model, ids, mask, _projects(model, r[:, None]))
        assert _max_diff(out.logits, want, mask) <= 1e-4
    else:  # Gemma 2/3: removed through the post norms, which rescale; not the projection hooks
        assert (
            arch in ("gemma2", "gemma3")
            and manifest.ablated["route"] == "orthogonalise_through_post_norm"
        )


def test_vector_and_rank2_ablation_together(tiny_models, tmp_path):
    model = tiny_models("gpt2")
    gen = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(model.d_model, 2, generator=gen))  # (d, 2)
    vectors = _vectors(model, ["blocks.1.hook_resid_post"])
    manifest = export_patched(model, vectors, tmp_path, ablate=q.T)
    assert manifest.ablated["rank"] == 2 and manifest.verification["max_abs_logit_diff"] <= 1e-4
    projected = {s: v - q @ (q.T @ v) for s, v in vectors.items()}  # added vectors lose r too
    ids, mask = model.encode(PROMPTS)
    want = _hooked_logits(model, ids, mask, _projects(model, q) + _adds(projected))
    assert _max_diff(_logits(_load(tmp_path), ids, mask).logits, want, mask) <= 1e-4


def test_export_leaves_the_source_model_untouched(tiny_models, tmp_path):
    model = tiny_models("llama")
    before = {k: v.clone() for k, v in model.hf.state_dict().items()}
    config = model.hf.config.to_dict()
    r = torch.randn(model.d_model)
    export_patched(model, _vectors(model, ALL), tmp_path, ablate=r, verify=False)
    assert model.hf.config.to_dict() == config
    after = model.hf.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_manifest_records_routes_switches_and_identity(tiny_models, tmp_path):
    from oyster_steer import __version__

    model = tiny_models("qwen2")
    manifest = export_patched(
        model, _vectors(model, ["blocks.1.hook_resid_post"]), tmp_path, strength=0.5
    )
    data = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert (
        data["model_fingerprint"] == model.fingerprint
        and data["oyster_steer_version"] == __version__
    )
    assert data["source_model_type"] == "qwen2" and data["model_type"] == "llama"
    assert data["config_changes"] == {"model_type": "llama", "mlp_bias": True}
    baked = data["baked"][0]
    assert baked["module"] == "model.layers.1.mlp.down_proj" and baked["strengths"] == [0.5]
    assert data["verification"]["max_abs_logit_diff"] <= 1e-4
    assert ExportManifest.load(tmp_path) == manifest
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["mlp_bias"] is True
    assert config["attention_bias"] is True  # Qwen2's q/k/v biases are kept


def _reference(model, vectors, r=None):
    """The hooks an export must reproduce: ablation of unit r, and vectors made orthogonal to r."""
    if r is None:
        return _adds(vectors)
    return _projects(model, r[:, None]) + _adds({s: v - r * (v @ r) for s, v in vectors.items()})


_FRESH = textwrap.dedent(
    """
    import json, sys, torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    out = {}
    for name, (ids, mask) in json.loads(sys.argv[2]).items():
        model = AutoModelForCausalLM.from_pretrained(sys.argv[1] + "/" + name, dtype=torch.float32).eval()
        ids, mask = torch.tensor(ids), torch.tensor(mask)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            out[name] = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.contiguous()
    assert "oyster_steer" not in sys.modules, "oyster_steer was imported"
    save_file(out, sys.argv[1] + "/logits.safetensors")
    """
)


def test_exported_checkpoint_loads_in_fresh_python_without_oyster_steer(tiny_models, tmp_path):
    """Only transformers, in a new interpreter: a relabelled Qwen2 and an untied, ablated Gemma."""
    from safetensors.torch import load_file

    wants, inputs = {}, {}
    for arch, sites, ablate in (("qwen2", ALL, False), ("gemma", ATTN_ONLY, True)):
        model = tiny_models(arch)
        vectors = _vectors(model, sites)
        r = torch.nn.functional.normalize(torch.randn(model.d_model), dim=0) if ablate else None
        export_patched(model, vectors, tmp_path / arch, ablate=r, verify=False)
        ids, mask = model.encode(PROMPTS)
        wants[arch] = (_hooked_logits(model, ids, mask, _reference(model, vectors, r)), mask)
        inputs[arch] = (ids.tolist(), mask.tolist())
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", _FRESH, str(tmp_path), json.dumps(inputs)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = load_file(str(tmp_path / "logits.safetensors"))
    for arch, (want, mask) in wants.items():
        assert _max_diff(got[arch], want, mask) <= 1e-4, arch
    gemma = json.loads((tmp_path / "gemma" / "config.json").read_text())
    assert gemma["tie_word_embeddings"] is False and gemma["attention_bias"] is True


def test_qwen3_bakes_attention_and_refuses_mlp(tmp_path):
    from transformers import AutoModelForCausalLM, Qwen3Config

    config = Qwen3Config(
        vocab_size=len(default_tokenizer()),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
    )
    torch.manual_seed(0)
    model = from_hf(
        AutoModelForCausalLM.from_config(config).eval(), default_tokenizer(), name="tiny-qwen3"
    )
    manifest = export_patched(model, _vectors(model, ["blocks.1.hook_attn_out"]), tmp_path / "ok")
    assert manifest.config_changes == {"attention_bias": True} and "vLLM" in manifest.notes[0]
    with pytest.raises(
        SiteError,
        match=r"cannot bake 'blocks.1.hook_resid_post': qwen3 has no config switch that gives its MLP output projection a bias",
    ):
        export_patched(model, _vectors(model, ["blocks.1.hook_resid_post"]), tmp_path / "no")


def test_refusals_are_one_clear_sentence(tiny_models, tmp_path):
    gemma2 = tiny_models("gemma2")
    with pytest.raises(
        SiteError,
        match=r"cannot bake 'blocks.1.hook_attn_out': gemma2 normalises each sublayer's output \(post_attention_layernorm / post_feedforward_layernorm, which have no bias\)",
    ):
        export_patched(gemma2, _vectors(gemma2, ["blocks.1.hook_attn_out"]), tmp_path / "a")
    llama = tiny_models("llama")
    with pytest.raises(
        WidthMismatchError,
        match=r"the vector at 'blocks.1.hook_resid_post' has shape \(3,\), but the model's residual width is 64",
    ):
        export_patched(llama, {"blocks.1.hook_resid_post": torch.ones(3)}, tmp_path / "b")
    with pytest.raises(
        EmptyInputError,
        match="nothing to export: pass steering vectors, a control plan, or ablate=",
    ):
        export_patched(llama, None, tmp_path / "c")
    with pytest.raises(ExportError, match="an ablation direction is all zeros"):
        export_patched(llama, None, tmp_path / "d", ablate=torch.zeros(64))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "config.json").write_text("{}")
    with pytest.raises(
        ExportError, match=r"out_dir .* is not empty: choose a new directory or delete its contents"
    ):
        export_patched(llama, _vectors(llama, ["blocks.1.hook_resid_post"]), tmp_path / "full")
    neox = tiny_models("gpt_neox")  # parallel blocks: no resid_mid to bake into
    with pytest.raises(
        SiteError,
        match=r"'blocks.1.hook_resid_mid': this architecture computes attention and MLP in parallel",
    ):
        export_patched(neox, _vectors(neox, ["blocks.1.hook_resid_mid"]), tmp_path / "f")
    other = tiny_models("llama", seed=1)
    foreign = SteeringVector.from_tensors(other, _vectors(other, ["blocks.1.hook_resid_post"]))
    with pytest.raises(
        ModelMismatchError,
        match=r"this steering vector was made for model 'tiny-llama-1' \(model_fingerprint=",
    ):
        export_patched(llama, foreign, tmp_path / "e")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before writing


def test_sliding_window_families_refuse_the_llama_relabel(tmp_path):
    from transformers import AutoModelForCausalLM, MistralConfig

    config = MistralConfig(
        vocab_size=len(default_tokenizer()),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=16,
    )
    model = from_hf(
        AutoModelForCausalLM.from_config(config).eval(), default_tokenizer(), name="tiny-swa"
    )
    with pytest.raises(
        ExportError,
        match=r"mistral uses sliding-window attention \(sliding_window=16\), which the llama layout needed for a bias cannot express",
    ):
        export_patched(model, _vectors(model, ["blocks.1.hook_resid_post"]), tmp_path / "a")
    manifest = export_patched(model, _vectors(model, ["blocks.0.hook_resid_pre"]), tmp_path / "b")
    assert manifest.model_type == "mistral"  # the embedding route needs no relabel


SHIPPED = (
    Path(__file__).resolve().parents[2]
    / "vectors"
    / "smollm2-135m-instruct"
    / "constructive.safetensors"
)


def _mean_diff(model, site):
    """A constructive-minus-benign direction from a few starter prompts (unit norm)."""
    from oyster_steer import capture
    from oyster_steer.data import load_starter

    starter = load_starter()
    vulnerable = starter.filter(intent="vulnerable").texts[:8]
    benign = starter.filter(intent="benign").texts[:8]
    acts = capture(model, vulnerable + benign, [site], progress=False)[site]  # (16, d)
    return torch.nn.functional.normalize(acts[:8].mean(0) - acts[8:].mean(0), dim=0)


@pytest.mark.slow
def test_smollm2_baked_vector_and_ablation_equal_hooks(smollm, tmp_path):
    model, site = smollm, "blocks.12.hook_resid_post"
    if SHIPPED.exists():
        from oyster_steer import load_vector

        vector = load_vector(SHIPPED)
        vectors = {s: vector.strength * d for s, d in vector.directions.items()}
    else:
        vectors = {site: 8.0 * _mean_diff(model, site)}
    r = _mean_diff(model, "blocks.20.hook_resid_post")
    r = torch.nn.functional.normalize(
        r - sum((r @ v) * v / (v @ v) for v in vectors.values()), dim=0
    )
    manifest = export_patched(model, vectors, tmp_path, ablate=r)
    assert manifest.untied_lm_head and manifest.config_changes["mlp_bias"] is True
    exported = from_hf(_load(tmp_path), model.tokenizer)
    _assert_writers_orthogonal(exported, r)
    ids, mask = model.encode(PROMPTS)
    want = _hooked_logits(model, ids, mask, _reference(model, vectors, r))
    got = _logits(exported.hf, ids, mask).logits
    assert _max_diff(got, want, mask) <= 1e-4 * float(want[mask.bool()].abs().max())
    steered = get_backend("hf").generate(
        model, ids, mask, _reference(model, vectors, r), max_new_tokens=12
    )
    baked = exported.hf.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=model.pad_id,
    )
    assert torch.equal(baked, steered)


def _plan(model, static_site, probe_site="blocks.1.hook_resid_post", gated=True):
    """A plan with one unconditional binding (equal strength for every strategy) and one gated
    binding; the probe reads a vulnerable user, so the policy picks "guide"."""
    from oyster_steer.control._plan import ControlPlan, bind
    from oyster_steer.probes._probe import LinearProbe

    gen, d = torch.Generator().manual_seed(11), model.d_model
    identity = {
        "model_fingerprint": model.fingerprint,
        "d_model": str(d),
        "n_layers": str(model.n_layers),
    }
    labels = ("benign", "borderline", "vulnerable", "malicious")
    probe = LinearProbe(probe_site, labels, torch.randn(4, d, generator=gen), torch.tensor([0.0, 0.0, 10.0, 0.0]),
                        torch.zeros(d), torch.ones(d), meta=identity)  # fmt: skip
    bindings = [
        bind(
            {static_site: 2 * torch.randn(d, generator=gen)},
            ["help", "guide", "redirect"],
            name="static",
        )
    ]
    if gated:
        bindings.append(
            bind(
                {"blocks.2.hook_attn_out": 2 * torch.randn(d, generator=gen)},
                {"guide": 3.0},
                name="gated",
            )
        )
    return ControlPlan(probe, bindings, positions="all", identity=identity)


def _patched(model, target, ids, mask, strength=None):
    from oyster_steer import patch

    with patch(model, target, strength):
        backend = get_backend("hf")
        return backend.forward(model, ids, mask), backend.generate(
            model, ids, mask, max_new_tokens=6
        )


def test_conditional_plan_is_refused_with_a_clear_error(tiny_models, tmp_path):
    model = tiny_models("llama")
    with pytest.raises(
        ExportError,
        match=r"the control plan has probe-gated \(conditional\) parts, which a stock checkpoint cannot express: pass allow_conditional=True",
    ):
        export_patched(model, _plan(model, "blocks.2.hook_resid_post"), tmp_path)
    assert not tmp_path.joinpath("config.json").exists()


def test_allow_conditional_bakes_static_part_and_packs_the_rest(tiny_models, tmp_path):
    """Relabelled Qwen2 (new fingerprint): exported + re-applied pack == source + whole plan."""
    from oyster_steer import load_model
    from oyster_steer.control import load_plan

    model = tiny_models("qwen2")
    plan = _plan(model, "blocks.2.hook_resid_post")
    manifest = export_patched(model, plan, tmp_path, allow_conditional=True)
    assert manifest.control_pack == "control.safetensors" and manifest.model_type == "llama"
    # an index, so engines that glob *.safetensors for weights (vLLM) skip control.safetensors
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {"model.safetensors"}
    assert [(r["site"], r["route"]) for r in manifest.baked] == [
        ("blocks.2.hook_resid_post", "mlp_bias")
    ]
    exported = load_model(str(tmp_path), device="cpu")
    pack = load_plan(tmp_path / "control.safetensors", exported)  # made for the exported model
    assert [b.name for b in pack.bindings] == ["gated"]
    ids, mask = model.encode(PROMPTS)
    (want, want_ids), (got, got_ids) = (
        _patched(model, plan, ids, mask),
        _patched(exported, pack, ids, mask),
    )
    assert _max_diff(got, want, mask) <= 1e-4 and torch.equal(got_ids, want_ids)


def test_static_plan_exports_without_allow_conditional(tiny_models, tmp_path):
    model = tiny_models("gpt2")
    plan = _plan(model, "blocks.2.hook_attn_out", gated=False)
    manifest = export_patched(model, plan, tmp_path, strength=2.0)  # multiplies every binding
    assert manifest.control_pack is None and not (tmp_path / "control.safetensors").exists()
    ids, mask = model.encode(PROMPTS)
    want, _ = _patched(model, plan, ids, mask, strength=2.0)
    assert _max_diff(_logits(_load(tmp_path), ids, mask).logits, want, mask) <= 1e-4


def test_unconditional_vector_before_the_probe_is_conditional(tiny_models, tmp_path):
    """The plan adds such a vector only after its decision (not in the prompt pass), so it is a
    conditional part: refused by default, packed (not baked) with allow_conditional."""
    from oyster_steer import load_model
    from oyster_steer.control import load_plan

    model = tiny_models("llama")
    plan = _plan(model, "blocks.0.hook_resid_post", gated=False)
    assert plan.static_vectors() == {} and plan.conditional_parts() is not None
    with pytest.raises(ExportError, match=r"probe-gated \(conditional\) parts"):
        export_patched(model, plan, tmp_path / "refused")
    manifest = export_patched(model, plan, tmp_path / "packed", allow_conditional=True)
    assert manifest.control_pack == "control.safetensors"
    assert manifest.baked == []  # nothing is unconditional from the first token on
    exported = load_model(str(tmp_path / "packed"), device="cpu")
    pack = load_plan(tmp_path / "packed" / "control.safetensors", exported)
    ids, mask = model.encode(PROMPTS)
    (want, want_ids), (got, got_ids) = (
        _patched(model, plan, ids, mask),
        _patched(exported, pack, ids, mask),
    )
    assert _max_diff(got, want, mask) <= 1e-4 and torch.equal(got_ids, want_ids)


def test_patched_hf_model_serves_steered_text_through_a_pipeline(tiny_models, tmp_path):
    """In memory: a pipeline on the patched model.hf generates the steered text (the same as the
    baked checkpoint's pipeline), and handle.remove() restores the original text."""
    from transformers import pipeline

    from oyster_steer import SteeringVector, patch

    model = tiny_models("llama")
    vector = SteeringVector.from_tensors(
        model, _vectors(model, ["blocks.1.hook_resid_post"], scale=6.0)
    )
    chat = [{"role": "user", "content": "I feel alone tonight."}]
    kwargs = dict(max_new_tokens=8, do_sample=False, return_full_text=False)
    serve = pipeline("text-generation", model=model.hf, tokenizer=model.tokenizer)
    plain = serve(chat, **kwargs)[0]["generated_text"]
    handle = patch(model, vector)  # hooks stay on model.hf until removed
    try:
        steered = serve(chat, **kwargs)[0]["generated_text"]
    finally:
        handle.remove()
    assert serve(chat, **kwargs)[0]["generated_text"] == plain != steered
    export_patched(model, vector, tmp_path, verify=False)
    baked = pipeline("text-generation", model=str(tmp_path))
    assert baked(chat, **kwargs)[0]["generated_text"] == steered


def test_cli_export_bakes_vector_and_ablation(tiny_models, tmp_path, capsys):
    from oyster_steer import SteeringVector, save_vector
    from oyster_steer.cli import main

    model = tiny_models("llama")
    model.hf.save_pretrained(tmp_path / "model")
    model.tokenizer.save_pretrained(tmp_path / "model")
    vectors = _vectors(model, ["blocks.1.hook_resid_post"])
    save_vector(
        SteeringVector.from_tensors(model, vectors, strength=3.0), tmp_path / "v.safetensors"
    )
    r = torch.nn.functional.normalize(torch.randn(model.d_model), dim=0)
    save_vector(
        SteeringVector.from_tensors(model, {"blocks.2.hook_resid_post": r}),
        tmp_path / "r.safetensors",
    )
    argv = ["export", "--model", str(tmp_path / "model"), "--device", "cpu", "--vector", str(tmp_path / "v.safetensors"),
            "--ablate", str(tmp_path / "r.safetensors"), "--strength", "0.5", "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "baked blocks.1.hook_resid_post -> model.layers.1.mlp.down_proj (mlp_bias" in out
        and "verified" in out
    )
    manifest = ExportManifest.load(tmp_path / "out")
    assert manifest.baked[0]["strengths"] == [0.5] and manifest.ablated["rank"] == 1
    ids, mask = model.encode(PROMPTS)
    want = _hooked_logits(
        model, ids, mask, _reference(model, {s: 0.5 * v for s, v in vectors.items()}, r)
    )
    assert _max_diff(_logits(_load(tmp_path / "out"), ids, mask).logits, want, mask) <= 1e-4
    assert main(argv[:-2]) == 2 and "--out DIR is required" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["tl", "nnsight"])
def test_export_from_other_backends_writes_the_same_checkpoint(tiny_models, backend, tmp_path):
    """TransformerLens wraps the HF modules it adopts; the export unwraps them."""
    from safetensors.torch import load_file

    vectors, r = _vectors(tiny_models("gemma"), ATTN_ONLY), torch.randn(64)
    for name in ("hf", backend):
        export_patched(tiny_models("gemma", name), vectors, tmp_path / name, ablate=r)
    want, got = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("hf", backend))
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 4), seed=st.integers(0, 10_000), axis=st.sampled_from([0, 1]))
def test_orthogonalisation_removes_the_span_and_is_idempotent(k, seed, axis):
    from oyster_steer.export._bake import _project_out, orthonormal

    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(k, 16, generator=gen)
    q = orthonormal(torch.cat([directions, directions[:1] * 2]))  # a repeated direction merges
    assert q.shape == (16, k) and torch.allclose(q.T @ q, torch.eye(k, dtype=q.dtype), atol=1e-10)
    weight = torch.randn(*((16, 8) if axis == 0 else (8, 16)), generator=gen, dtype=torch.float64)
    once = _project_out(weight, q, axis)
    along = q.T @ once if axis == 0 else once @ q
    assert float(along.abs().max()) <= 1e-10
    assert torch.allclose(_project_out(once, q, axis), once, atol=1e-12)
