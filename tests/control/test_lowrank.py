"""Low-rank (ReFT-style) interventions under a control plan, on a tiny random-init model.

The behaviour is *planted*: :func:`train_intervention` learns, at layers 1 and 2 jointly, to make
the model say a fixed target after the vulnerable prompt. Bound to "guide" in a plan whose probe
sends that prompt to "guide" and the benign one to "help", greedy decoding must emit the target
for the vulnerable row only, and leave the benign row exactly as the unpatched model has it.
"""

from __future__ import annotations

import pytest
import torch
from _planted import BENIGN, READ, VULNERABLE, planted_intent_probe

from oyster_steer import ArtifactError, testing
from oyster_steer.backends import get_backend, position_ids
from oyster_steer.control import ControlPlan, bind, load_plan, patch_plan, save_plan
from oyster_steer.control._plan import Binding
from oyster_steer.export import export_patched
from oyster_steer.export._routes import ExportError
from oyster_steer.models._artifacts import model_meta
from oyster_steer.vectors import (
    InterventionConfig,
    LowRankIntervention,
    load_intervention,
    save_intervention,
    train_intervention,
)
from oyster_steer.vectors._intervention import lowrank_delta

TARGET = " dog cat bird fish"


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models("llama", "hf")


@pytest.fixture(scope="module")
def probe(model):
    """Planted as in test_control: benign -> p(benign) ~ 1, vulnerable -> p(vulnerable) ~ 1."""
    return planted_intent_probe(model, BENIGN, VULNERABLE, READ)


@pytest.fixture(scope="module")
def intervention(model):
    cfg = InterventionConfig(rank=4, steps=60, batch_size=1, lr=3e-2, max_reply_tokens=16)
    return train_intervention(
        model, [VULNERABLE], [TARGET], sites=[1, 2], config=cfg, progress=False
    )


@pytest.fixture(scope="module")
def plan(model, probe, intervention):
    return ControlPlan(
        probe, [bind(intervention, {"guide": 1.0}, name="guide")], identity=model_meta(model)
    )


def _generate(model, prompts, n):
    ids, mask = model.encode(prompts)
    with torch.no_grad():
        out = get_backend("hf").generate(model, ids, mask, max_new_tokens=n)
    return out[:, ids.shape[1] :]


def _target_ids(model):
    return model.tokenizer(TARGET, add_special_tokens=False)["input_ids"]


def test_planted_behaviour_only_for_rows_the_gate_selects(model, plan):
    want = _target_ids(model)
    base = _generate(model, [BENIGN, VULNERABLE], len(want))
    assert base[1].tolist() != want  # the random model does not say it by itself
    with patch_plan(model, plan) as handle:
        steered = _generate(model, [BENIGN, VULNERABLE], len(want))
        assert handle.decisions().strategy == ["help", "guide"]
    assert steered[1].tolist() == want
    assert torch.equal(steered[0], base[0])  # the benign row: nothing changed


def test_gated_row_equals_the_intervention_applied_alone(model, plan, intervention):
    ids, mask = model.encode([BENIGN, VULNERABLE])
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    hooks = []
    for site, (R, W, b) in intervention.parts.items():
        layer = int(site.split(".")[1])
        block = model.hf.model.layers[layer]

        def fwd(module, args, out, R=R, W=W, b=b):
            h = out[0] if isinstance(out, tuple) else out
            h = h + lowrank_delta(h, R, W, b)
            return (h, *out[1:]) if isinstance(out, tuple) else h

        hooks.append(block.register_forward_hook(fwd))
    try:
        with torch.no_grad():
            alone = model.hf(**kwargs).logits
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad(), patch_plan(model, plan):
        gated = model.hf(**kwargs).logits
    torch.testing.assert_close(gated[1], alone[1])


def test_padding_does_not_change_a_steered_row(model, plan):
    with torch.no_grad(), patch_plan(model, plan):
        ids, mask = model.encode([VULNERABLE])
        alone = model.hf(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
        ids2, mask2 = model.encode([VULNERABLE + " and more words here to pad", VULNERABLE])
        both = model.hf(input_ids=ids2, attention_mask=mask2, position_ids=position_ids(mask2))
    n = int(mask.sum())
    torch.testing.assert_close(both.logits[1, -n:], alone.logits[0], atol=1e-4, rtol=1e-4)


def test_patched_lowrank_plan_compiles_fullgraph(model, plan):
    ids, mask = model.encode([BENIGN, VULNERABLE])
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    with torch.no_grad(), patch_plan(model, plan) as handle:
        eager = model.hf(**kwargs).logits
        torch._dynamo.reset()
        compiled = torch.compile(model.hf, fullgraph=True, backend="eager")(**kwargs).logits
        assert handle.decisions().strategy == ["help", "guide"]
    torch.testing.assert_close(compiled, eager)


def test_pack_and_file_round_trips_keep_the_behaviour(model, plan, intervention, tmp_path):
    ids, mask = model.encode([BENIGN, VULNERABLE])
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    loaded = load_plan(save_plan(plan, tmp_path / "control.safetensors"), model)
    assert [sorted(b.lowrank) for b in loaded.bindings] == [sorted(intervention.parts)]
    with torch.no_grad():
        with patch_plan(model, plan):
            a = model.hf(**kwargs).logits
        with patch_plan(model, loaded):
            b = model.hf(**kwargs).logits
    torch.testing.assert_close(a, b)
    again = load_intervention(save_intervention(intervention, tmp_path / "iv.safetensors"), model)
    for site, part in intervention.parts.items():
        for x, y in zip(part, again.parts[site], strict=True):
            assert torch.equal(x, y)


def test_export_refuses_to_bake_an_input_dependent_intervention(
    model, plan, intervention, tmp_path
):
    with pytest.raises(ExportError, match=r"input-dependent low-rank bindings \['guide'\]"):
        export_patched(model, plan, tmp_path / "out")
    always = plan.replace(
        bindings=[bind(intervention, {"help": 1.0, "guide": 1.0, "redirect": 1.0}, name="always")]
    )
    with pytest.raises(ExportError, match=r"never a bias, gated or not"):
        export_patched(model, always, tmp_path / "out2")
    with pytest.raises(TypeError, match=r"cannot bake a LowRankIntervention"):
        export_patched(model, intervention, tmp_path / "out3")


def test_bad_training_input_names_the_fix(model):
    with pytest.raises(ValueError, match=r"got no training prompts: pass the prompts"):
        train_intervention(model, [], [], sites=[1])
    with pytest.raises(ValueError, match=r"target 0 has \d+ tokens .* max_reply_tokens=4: shorten"):
        train_intervention(
            model,
            [VULNERABLE],
            ["a much longer target reply than four tokens allow"],
            sites=[1],
            config=InterventionConfig(max_reply_tokens=4, steps=1),
        )
    with pytest.raises(ValueError, match=r"got 1 prompts and 2 targets"):
        train_intervention(model, [VULNERABLE], ["a", "b"], sites=[1])


def test_malformed_parts_and_packs_are_refused(model, intervention, tmp_path):
    R = torch.zeros(2, model.d_model)
    with pytest.raises(ValueError, match=r"do not fit: pass R and W of shape \(rank, d\)"):
        LowRankIntervention(
            {"blocks.1.hook_resid_post": (R, torch.zeros(3, model.d_model), torch.zeros(2))}
        )
    nan = torch.full((2, model.d_model), float("nan"))
    with pytest.raises(ValueError, match=r"the intervention's R at .* holds NaN"):
        LowRankIntervention({"blocks.1.hook_resid_post": (nan, R, torch.zeros(2))})
    site = "blocks.1.hook_resid_post"
    with pytest.raises(
        ValueError,
        match=r"binding 'g''s low-rank R \(2, \d+\), W \(2, \d+\) and b \(3,\) at .* do not fit",
    ):
        Binding("g", {}, {"guide": 1.0}, lowrank={site: (R, R, torch.zeros(3))})
    with pytest.raises(ValueError, match=r"binding 'g''s low-rank W at .* holds NaN"):
        Binding("g", {}, {"guide": 1.0}, lowrank={site: (R, nan, torch.zeros(2))})
    from safetensors.torch import load_file, save_file

    path = save_intervention(intervention, tmp_path / "iv.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors.pop(next(k for k in tensors if k.endswith("/W")))
    save_file(tensors, str(tmp_path / "broken.safetensors"), metadata=meta)
    with pytest.raises(ArtifactError, match=r"not a complete intervention"):
        load_intervention(tmp_path / "broken.safetensors")


def test_training_from_cached_lower_blocks_equals_full_forwards(monkeypatch):
    """The trainer runs the blocks below its first site once per example (frozen_inputs); the
    learned parts equal those of full forwards on every step."""
    # its own model: the session-shared tiny llama is touched by other tests' hooks and patches
    # (under xdist this test failed on a shared model whose family check said unsupported)
    model = testing.tiny_model("llama", "hf", seed=0)
    import oyster_steer.activations._scoring as scoring
    import oyster_steer.vectors._intervention as trainer

    cfg = InterventionConfig(rank=2, steps=12, batch_size=2, lr=3e-2, max_reply_tokens=16)
    prompts = [VULNERABLE, BENIGN, "How do I bake bread?"]
    targets = [TARGET, " a b c", " bread is easy"]
    fast = train_intervention(model, prompts, targets, sites=[1, 2], config=cfg, progress=False)
    for module in (trainer, scoring):  # every caller of the cached path falls back
        monkeypatch.setattr(module, "supports_forward_from", lambda m: False)
    calls = []
    monkeypatch.setattr(trainer, "frozen_inputs", lambda *a, **k: calls.append(1))
    full = train_intervention(model, prompts, targets, sites=[1, 2], config=cfg, progress=False)
    assert fast.sites == full.sites and not calls  # the second run took the full forwards
    for site in full.sites:
        for a, b in zip(fast.parts[site], full.parts[site], strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert fast.meta["final_loss"] == full.meta["final_loss"]


def _kl_on(model, intervention, prompt, reply_ids):
    """Mean per-token KL(unsteered || steered) over ``reply_ids`` after ``prompt``, applied ungated."""
    from oyster_steer.activations._scoring import Group, chat_ids, pack, reply_logprobs
    from oyster_steer.reproduce._plan_training import _hooks

    packed = pack([Group(chat_ids(model, prompt), (tuple(reply_ids),))], model.pad_id, model.device)
    with torch.no_grad():
        logp = reply_logprobs(model, packed, full=True)
        with get_backend("hf").add_hooks(model, _hooks(model, intervention, 1.0)):
            logq = reply_logprobs(model, packed, full=True)
    return float((logp.exp() * (logp - logq)).sum(-1).mean())


def test_retain_term_leaves_retain_prompts_as_the_model_has_them():
    """Trained on one vulnerable prompt, the edit also moves a benign prompt's next-token
    distributions; with that benign prompt and its unsteered reply as retain rows, it moves them
    far less, and the vulnerable prompt still gets its target."""
    model = testing.tiny_model("llama", "hf", seed=0)
    base = _generate(model, [BENIGN], 6)[0].tolist()
    reply = model.tokenizer.decode(base)
    cfg = InterventionConfig(rank=4, steps=60, batch_size=1, lr=3e-2, max_reply_tokens=16)
    kw = dict(sites=[1, 2], progress=False)
    plain = train_intervention(model, [VULNERABLE], [TARGET], config=cfg, **kw)
    kept = train_intervention(
        model, [VULNERABLE], [TARGET], config=cfg, retain=([BENIGN], [reply]), **kw
    )
    ids = model.tokenizer(reply, add_special_tokens=False)["input_ids"]
    loose, tight = _kl_on(model, plain, BENIGN, ids), _kl_on(model, kept, BENIGN, ids)
    assert loose > 0.01 and tight < loose / 2, (loose, tight)
    assert kept.meta["n_retain"] == "1"
    want = _target_ids(model)
    with get_backend("hf").add_hooks(model, _hooks_of(model, kept)):
        assert _generate(model, [VULNERABLE], len(want))[0].tolist() == want


def _hooks_of(model, intervention):
    from oyster_steer.reproduce._plan_training import _hooks

    return _hooks(model, intervention, 1.0)


def test_held_out_loss_keeps_the_best_step():
    """With held-out pairs the returned parameters are those of the evaluation with the lowest
    held-out loss, not the last step's (here the held-out target conflicts with training)."""
    model = testing.tiny_model("llama", "hf", seed=0)
    cfg = InterventionConfig(
        rank=2, steps=40, batch_size=1, lr=5e-2, max_reply_tokens=16, eval_every=5
    )
    logs: list[str] = []
    iv = train_intervention(
        model,
        [VULNERABLE],
        [TARGET],
        sites=[1, 2],
        config=cfg,
        progress=False,
        log=logs.append,
        held_out=([BENIGN], [" a b c"]),
    )
    held = [float(line.split()[-1]) for line in logs if "held-out" in line]
    assert len(held) == 8
    assert abs(float(iv.meta["held_out_loss"]) - min(held)) < 1e-3
    assert iv.meta["kept_step"] == str(5 * (held.index(min(held)) + 1)) != "40", held
