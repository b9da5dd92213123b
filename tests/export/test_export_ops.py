"""export_patched(op=...): ablate / clamp / ablate_add baked as exact writer edits, or refused.

Each test plants a unit direction ``u``, exports, loads the checkpoint with plain
``AutoModelForCausalLM.from_pretrained`` and compares it with the live ``patch(..., op=...)``.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from oyster_steer import SiteError, patch
from oyster_steer.backends import get_backend, position_ids
from oyster_steer.export import ExportError, ExportManifest, export_patched

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PROMPTS = ["How do I bake bread?", "I feel alone tonight."]
BAKEABLE = [
    "llama",
    "qwen2",
    "phi3",
    "gpt2",
    "gpt_neox",
    "smollm3",
]  # have attention and MLP biases
STRENGTH = 2.0


def _unit(model, seed=3):
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(model.d_model, generator=gen), dim=0)


def _every_write(model):
    """blocks.0.hook_resid_pre (the embedding) and every attention and MLP output."""
    return ["blocks.0.hook_resid_pre"] + [
        f"blocks.{layer}.hook_{kind}"
        for layer in range(model.n_layers)
        for kind in ("attn_out", "mlp_out")
    ]


def _every_layer(model):
    """Each block's resid_pre and resid_mid, and the last resid_post: the stream after every write."""
    sites = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.n_layers)]
    if not model.parallel_residual:
        sites += [f"blocks.{layer}.hook_resid_mid" for layer in range(model.n_layers)]
    return sites + [f"blocks.{model.n_layers - 1}.hook_resid_post"]


def _export_and_compare(model, sites, u, op, tmp_path, value=None):
    """(manifest, exported outputs with hidden states, max |logit diff| vs the live patch)."""
    from transformers import AutoModelForCausalLM

    vectors = {s: u for s in sites}
    manifest = export_patched(model, vectors, tmp_path, op=op, value=value, strength=STRENGTH)
    ids, mask = model.encode(PROMPTS)
    with torch.no_grad():
        plain = get_backend("hf").forward(model, ids, mask, [])
        handle = patch(model, vectors, STRENGTH, op=op, value=value)
        try:
            live = get_backend("hf").forward(model, ids, mask, [])
        finally:
            handle.remove()
        hf = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
        out = hf(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids(mask),
            use_cache=False,
            output_hidden_states=True,
        )
    real = mask.bool()
    assert float((live - plain)[real].abs().max()) > 1e-3  # the operator changes the model
    return manifest, out, float((out.logits - live)[real].abs().max()), real


def _projections(out, u, real):
    """|h . u| at the input of every block (hidden_states[-1] is after the final norm)."""
    return [float((h @ u)[real].abs().max()) for h in out.hidden_states[:-1]]


@pytest.mark.parametrize("arch", BAKEABLE)
def test_ablate_at_every_write_bakes_exactly(tiny_models, arch, tmp_path):
    model = tiny_models(arch)
    u = _unit(model)
    manifest, out, diff, real = _export_and_compare(
        model, _every_write(model), u, "ablate", tmp_path
    )
    assert diff <= 1e-4 and manifest.verification["max_abs_logit_diff"] <= 1e-4
    assert max(_projections(out, u, real)) <= 1e-5  # no projection anywhere in the stream
    assert {r["op"] for r in manifest.operators} == {"ablate"}
    assert len(manifest.writers) == 1 + 2 * model.n_layers


@pytest.mark.parametrize("arch", BAKEABLE)
def test_clamp_at_every_layer_sets_the_projection_everywhere(tiny_models, arch, tmp_path):
    model = tiny_models(arch)
    u = _unit(model, seed=4)
    manifest, out, diff, real = _export_and_compare(
        model, _every_layer(model), u, "clamp", tmp_path, value=1.5
    )
    assert diff <= 1e-4
    for proj in _projections(out, u, real):
        assert abs(proj - 1.5) <= 1e-5
    assert [r["value"] for r in manifest.operators] == [1.5] * len(_every_layer(model))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_ablate_add_at_every_layer_leaves_the_added_vector(tiny_models, arch, tmp_path):
    model = tiny_models(arch)
    u = _unit(model, seed=5)
    _, out, diff, real = _export_and_compare(model, _every_layer(model), u, "ablate_add", tmp_path)
    assert diff <= 1e-4
    for proj in _projections(out, u, real):  # removed, then STRENGTH * u added at each point
        assert abs(proj - STRENGTH) <= 1e-5


@pytest.mark.parametrize("arch", ["llama", "gemma", "qwen3", "gpt_neox"])
def test_ablation_through_each_layers_resid_pre_and_mid(tiny_models, arch, tmp_path):
    """Gemma: tied embeddings (untied, the LM head keeps the originals) and a scaled embedding."""
    model = tiny_models(arch)
    u = _unit(model, seed=6)
    manifest, out, diff, real = _export_and_compare(
        model, _every_layer(model), u, "ablate", tmp_path
    )
    assert diff <= 1e-4 and max(_projections(out, u, real)) <= 1e-5
    if getattr(model.hf.config, "tie_word_embeddings", False):
        assert manifest.untied_lm_head


def test_one_write_bakes_exactly_with_a_bias(tiny_models, tmp_path):
    """A clamp on one attention output: its weights lose u and its bias sets u's component."""
    model = tiny_models("llama")
    u = _unit(model, seed=7)
    manifest, _, diff, _ = _export_and_compare(
        model, ["blocks.1.hook_attn_out"], u, "clamp", tmp_path, value=-2.0
    )
    assert diff <= 1e-4
    assert manifest.config_changes.get("attention_bias") is True
    from safetensors.torch import load_file

    sd = load_file(str(tmp_path / "model.safetensors"))
    o_proj = "model.layers.1.self_attn.o_proj"
    assert float((u @ sd[f"{o_proj}.weight"]).abs().max()) <= 1e-6
    assert abs(float(sd[f"{o_proj}.bias"] @ u) + 2.0) <= 1e-5
    assert json.loads((tmp_path / "oyster_steer_manifest.json").read_text())["operators"]


def test_ablate_export_with_a_global_ablation(tiny_models, tmp_path):
    model = tiny_models("gpt2")
    u, r = _unit(model, seed=8), _unit(model, seed=9)
    manifest = export_patched(
        model, {s: u for s in _every_write(model)}, tmp_path, op="clamp", value=0.5, ablate=r
    )
    assert manifest.ablated["rank"] == 1 and manifest.verification["max_abs_logit_diff"] <= 1e-4
    assert ExportManifest.load(tmp_path).operators == manifest.operators


@pytest.mark.parametrize(
    "sites",
    [
        ["blocks.1.hook_resid_post"],  # one layer of the stream
        ["blocks.2.hook_resid_pre"],
        "resid_pre_only",  # every block's input, but each MLP still reads attention's u part
        "resid_post_only",  # the embedding's u part reaches block 0 unremoved
    ],
)
def test_stream_operator_at_a_subset_is_refused(tiny_models, sites, tmp_path):
    model = tiny_models("llama")
    n = model.n_layers
    if sites == "resid_pre_only":
        sites = [f"blocks.{layer}.hook_resid_pre" for layer in range(n)]
    elif sites == "resid_post_only":
        sites = [f"blocks.{layer}.hook_resid_post" for layer in range(n)]
    u = _unit(model)
    for op, value in (("ablate", None), ("clamp", 1.0), ("ablate_add", None)):
        with pytest.raises(ExportError) as err:
            export_patched(model, {s: u for s in sites}, tmp_path, op=op, value=value)
        text = str(err.value)
        assert (
            "edits the whole residual stream" in text
            and "no weight edit reproduces it exactly" in text
        )
        assert "hook_attn_out and hook_mlp_out" in text and "persistent=True" in text
        assert text.count(". ") == 0  # one sentence
    assert not any(tmp_path.iterdir())  # nothing written


def test_post_norm_families_and_callables_are_refused(tiny_models, tmp_path):
    gemma2 = tiny_models("gemma2")
    u = _unit(gemma2)
    with pytest.raises(
        ExportError, match="rescales them, so no weight edit reproduces a projection exactly"
    ):
        export_patched(gemma2, {s: u for s in _every_write(gemma2)}, tmp_path, op="ablate")
    llama = tiny_models("llama")
    with pytest.raises(ExportError, match="python callable"):
        export_patched(
            llama, {"blocks.0.hook_resid_pre": _unit(llama)}, tmp_path, op=lambda x, v: 0 * x
        )
    with pytest.raises(
        SiteError, match="no config switch that gives its MLP output projection a bias"
    ):
        qwen3 = tiny_models("qwen3")
        export_patched(
            qwen3, {"blocks.0.hook_mlp_out": _unit(qwen3)}, tmp_path, op="clamp", value=1.0
        )
    with pytest.raises(ExportError, match="non-zero direction"):
        export_patched(
            llama, {"blocks.0.hook_resid_pre": torch.zeros(llama.d_model)}, tmp_path, op="ablate"
        )
    with pytest.raises(ValueError, match="needs value="):
        export_patched(llama, {"blocks.0.hook_resid_pre": _unit(llama)}, tmp_path, op="clamp")


def test_cli_export_with_op(tiny_models, tmp_path, capsys):
    from oyster_steer import SteeringVector, save_vector
    from oyster_steer.cli import main

    model = tiny_models("llama")
    u = _unit(model)
    vector = SteeringVector.from_tensors(model, {s: u for s in _every_write(model)})
    save_vector(vector, tmp_path / "u.safetensors")
    model.hf.save_pretrained(tmp_path / "model")
    model.tokenizer.save_pretrained(tmp_path / "model")
    argv = ["export", "--model", str(tmp_path / "model"), "--device", "cpu", "--vector", str(tmp_path / "u.safetensors"),
            "--op", "clamp", "--value", "0.25", "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "clamp" in printed and "verified" in printed
    manifest = ExportManifest.load(tmp_path / "out")
    assert manifest.operators[0]["value"] == 0.25


@pytest.mark.slow
def test_smollm2_ablation_and_clamp_at_every_layer(smollm, tmp_path):
    """The real default model (tied embeddings): exact against the live patch."""
    u = _unit(smollm, seed=11)
    for op, value in (("ablate", None), ("clamp", 2.0)):
        manifest, out, diff, real = _export_and_compare(
            smollm, _every_layer(smollm), u, op, tmp_path / op, value=value
        )
        scale = float(out.logits[real].abs().max())
        assert diff <= 1e-4 * scale and manifest.untied_lm_head
        for h in out.hidden_states[:-1]:  # float32 rounding of a residual with |h| in the hundreds
            error = float(((h @ u)[real] - (value or 0.0)).abs().max())
            assert error <= 1e-6 * float(h[real].abs().max())
        print(f"smollm2 {op}: max |logit diff| {diff:.3g} (max |logit| {scale:.3g})")


def _op_plan(model, u, op, value=None, gated=False):
    """A plan whose probe reads the embedding, so every later site is unconditional: ``op`` on
    ``u`` at every layer (one strength for every strategy), an added vector fused at one of those
    sites, and optionally a gated vector (the probe reads a vulnerable user: "guide")."""
    from oyster_steer.control._plan import ControlPlan, bind
    from oyster_steer.probes._probe import LinearProbe

    gen, d = torch.Generator().manual_seed(12), model.d_model
    identity = {
        "model_fingerprint": model.fingerprint,
        "d_model": str(d),
        "n_layers": str(model.n_layers),
    }
    labels = ("benign", "borderline", "vulnerable", "malicious")
    probe = LinearProbe("blocks.0.hook_resid_pre", labels, torch.randn(4, d, generator=gen),
                        torch.tensor([0.0, 0.0, 10.0, 0.0]), torch.zeros(d), torch.ones(d), meta=identity)  # fmt: skip
    every = ["help", "guide", "redirect"]
    bindings = [
        bind({s: u for s in _every_layer(model)}, dict.fromkeys(every, STRENGTH), name="op", op=op, value=value),
        bind({"blocks.1.hook_resid_mid": torch.randn(d, generator=gen)}, every, name="added"),
    ]  # fmt: skip
    if gated:
        bindings.append(bind({"blocks.2.hook_resid_post": 2 * torch.randn(d, generator=gen)}, {"guide": 3.0}, name="gated"))  # fmt: skip
    return ControlPlan(probe, bindings, positions="all", identity=identity)


@pytest.mark.parametrize(("op", "value"), [("ablate", None), ("clamp", 1.5), ("ablate_add", None)])
def test_unconditional_operator_bindings_of_a_plan_bake_exactly(tiny_models, op, value, tmp_path):
    model = tiny_models("llama")
    u = _unit(model, seed=13)
    plan = _op_plan(model, u, op, value)
    manifest = export_patched(model, plan, tmp_path)
    assert manifest.control_pack is None and manifest.verification["max_abs_logit_diff"] <= 1e-4
    ids, mask = model.encode(PROMPTS)
    with torch.no_grad(), patch(model, plan):
        want = get_backend("hf").forward(model, ids, mask, [])
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
    with torch.no_grad():
        got = hf(
            input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False
        ).logits
    assert float((got - want)[mask.bool()].abs().max()) <= 1e-4


def test_plan_operator_baked_and_gated_vector_packed(tiny_models, tmp_path):
    """allow_conditional: the ablation is baked, the gated vector re-applied from the pack."""
    from oyster_steer import load_model
    from oyster_steer.control import load_plan

    model = tiny_models("llama")
    plan = _op_plan(model, _unit(model, seed=14), "ablate", gated=True)
    with pytest.raises(ExportError, match="probe-gated"):
        export_patched(model, plan, tmp_path / "refused")
    manifest = export_patched(model, plan, tmp_path / "out", allow_conditional=True)
    assert manifest.control_pack == "control.safetensors"
    exported = load_model(str(tmp_path / "out"), device="cpu")
    pack = load_plan(tmp_path / "out" / "control.safetensors", exported)
    assert [b.name for b in pack.bindings] == ["gated"]
    ids, mask = model.encode(PROMPTS)
    with torch.no_grad():
        with patch(model, plan):
            want = get_backend("hf").forward(model, ids, mask, [])
        with patch(exported, pack):
            got = get_backend("hf").forward(exported, ids, mask, [])
    assert float((got - want)[mask.bool()].abs().max()) <= 1e-4


def test_plan_operator_at_a_subset_of_the_stream_is_refused(tiny_models, tmp_path):
    from oyster_steer.control._plan import ControlPlan, bind

    model = tiny_models("llama")
    base = _op_plan(model, _unit(model), "ablate")
    one = bind(
        {"blocks.1.hook_resid_post": _unit(model)},
        ["help", "guide", "redirect"],
        name="one",
        op="ablate",
    )
    plan = ControlPlan(base.probe, [one], positions="all", identity=base.identity)
    with pytest.raises(ExportError, match="edits the whole residual stream"):
        export_patched(model, plan, tmp_path)
