"""Control plans on a tiny model: per-row gating, latching, positions, packs, compile, backends.

The probe is *planted*: it reads the direction between a benign and a vulnerable prompt at
``blocks.0.hook_resid_post``, so the posterior of each is known (benign -> help, vulnerable ->
guide). Vectors write at layers 1 and 2, after the read site, so a gated row must match an
unconditionally steered one and an ungated row the unpatched model.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _planted import BENIGN, READ, VULNERABLE, planted_intent_probe

import oyster_steer as osteer
from oyster_steer import ArtifactError, ModelMismatchError, SiteError, WidthMismatchError
from oyster_steer.backends import get_backend, position_ids
from oyster_steer.control import ControlPlan, bind, load_plan, patch_plan, save_plan
from oyster_steer.control._plan import exec_order
from oyster_steer.core._sites import resolve_site
from oyster_steer.models._artifacts import model_meta
from oyster_steer.probes._probe import LinearProbe
from oyster_steer.steering._steer import patch


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models("llama", "hf")


@pytest.fixture(scope="module")
def probe(model):
    """Benign prompt -> p(benign) ~ 1, vulnerable prompt -> p(vulnerable) ~ 1."""
    return planted_intent_probe(model, BENIGN, VULNERABLE, READ)


@pytest.fixture(scope="module")
def vector(model):
    g = torch.Generator().manual_seed(1)
    return {f"blocks.{i}.hook_resid_post": torch.randn(model.d_model, generator=g) for i in (1, 2)}


@pytest.fixture(scope="module")
def plan(model, probe, vector):
    identity = model_meta(model)
    return ControlPlan(
        probe,
        [
            bind(vector, {"guide": 3.0, "redirect": 3.0}, name="random")
        ],  # a random direction, no role
        identity=identity,
    )


@pytest.fixture(scope="module")
def batch(model):
    return model.encode([BENIGN, VULNERABLE])


def _forward(model, ids, mask):
    with torch.no_grad():
        return get_backend(model.backend).forward(model, ids, mask)


def _generate(model, ids, mask, n=5):
    with torch.no_grad():
        return get_backend(model.backend).generate(model, ids, mask, max_new_tokens=n)


def test_mixed_batch_rows_get_their_own_gates(model, plan, batch):
    base = _forward(model, *batch)
    with patch_plan(model, plan) as handle:
        out = _forward(model, *batch)
        d = handle.decisions()
    assert d.intent == ["benign", "vulnerable"] and d.strategy == ["help", "guide"]
    assert torch.equal(d.gates, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert torch.equal(out[0], base[0])  # "help" binds nothing: the benign row is untouched
    assert (out[1] - base[1]).abs().max() > 0.1


def _layer_hooks(model) -> list[set[int]]:
    """Hook ids on every layer (the model is shared by the session: transformers may have added
    its own output-recording hooks before, so compare against a snapshot, not against none)."""
    return [
        set(layer._forward_hooks) | set(layer._forward_pre_hooks) for layer in model.hf.model.layers
    ]


def test_gated_row_equals_unconditional_steering_and_removal_restores(model, plan, vector, batch):
    before = _layer_hooks(model)
    base = _forward(model, *batch)
    with patch_plan(model, plan):
        gated = _forward(model, *batch)
    with patch(model, vector, strength=3.0):
        always = _forward(model, *batch)
    torch.testing.assert_close(gated[1], always[1])
    assert torch.equal(_forward(model, *batch), base)
    assert _layer_hooks(model) == before


def test_padding_does_not_change_a_rows_decision(model, plan, batch):
    with patch_plan(model, plan) as handle:
        _forward(model, *batch)
        together = handle.decisions()
        _forward(model, *model.encode([BENIGN]))
        alone = handle.decisions()
    assert batch[1][0, 0] == 0  # the benign row is the shorter, left-padded one
    torch.testing.assert_close(alone.posterior, together.posterior[:1], atol=1e-4, rtol=0)
    assert alone.strategy == together.strategy[:1]


def test_decisions_latch_across_decode_steps(model, plan, vector, batch):
    with patch_plan(model, plan, trace=True) as handle:
        tokens = _generate(model, *batch, n=5)
        d, trace = handle.decisions(), handle.trace()
    with patch(model, vector, strength=3.0):
        steered = _generate(model, *batch, n=5)
    plain = _generate(model, *batch, n=5)
    assert d.step == 4 and d.strategy == ["help", "guide"]
    assert trace.applied.shape == (2, batch[0].shape[1] + 4, 3)
    assert torch.equal(
        trace.applied[0, :, 1:], torch.zeros_like(trace.applied[0, :, 1:])
    )  # help only
    assert torch.equal(
        trace.applied[1, :, 1], torch.ones(trace.applied.shape[1])
    )  # guide, every token
    assert torch.equal(tokens[0], plain[0]) and torch.equal(tokens[1], steered[1])


def test_a_new_prompt_pass_resets_the_latch(model, plan):
    with patch_plan(model, plan) as handle:
        _generate(model, *model.encode([VULNERABLE]), n=3)
        assert handle.decisions().strategy == ["guide"]
        _generate(model, *model.encode([BENIGN]), n=3)
        assert handle.decisions().strategy == ["help"] and handle.decisions().step == 2


@pytest.mark.parametrize(
    ("positions", "prompt", "generated"),
    [("prompt", 1.0, 0.0), ("generated", 0.0, 1.0), ("all", 1.0, 1.0)],
)
def test_positions_select_prompt_or_generated_tokens(model, plan, positions, prompt, generated):
    ids, mask = model.encode([VULNERABLE])
    with patch_plan(model, plan.replace(positions=positions), trace=True) as handle:
        _generate(model, ids, mask, n=4)
        applied = handle.trace().applied[0, :, 1]  # the "guide" gate per token
    t = ids.shape[1]
    assert torch.equal(applied[:t], torch.full((t,), prompt))
    assert torch.equal(applied[t:], torch.full((3,), generated))


def test_schedule_scales_by_decode_step_and_holds_its_last_value(model, plan):
    ids, mask = model.encode([VULNERABLE])
    with patch_plan(model, plan.replace(schedule=(1.0, 0.5, 0.25)), trace=True) as handle:
        _generate(model, ids, mask, n=6)
        applied = handle.trace().applied[0, ids.shape[1] :, 1]
    assert torch.equal(applied, torch.tensor([0.5, 0.25, 0.25, 0.25, 0.25]))


def test_running_read_averages_the_last_prompt_token_and_generated_tokens(model, plan):
    ids, mask = model.encode([VULNERABLE])
    with patch_plan(model, plan.replace(read="running")) as handle:
        tokens = _generate(model, ids, mask, n=5)
        got = handle.decisions().posterior
    full = torch.ones_like(tokens)
    acts = {}
    hook = osteer.backends.Hook(osteer.parse_site(READ), lambda x: acts.setdefault("x", x.detach()))
    with torch.no_grad(), get_backend("hf").add_hooks(model, [hook]):
        model.hf(input_ids=tokens, attention_mask=full, position_ids=position_ids(full))
    t = ids.shape[1]
    mean = acts["x"][0, t - 1 : tokens.shape[1] - 1].mean(
        0, keepdim=True
    )  # tokens fed to the model
    torch.testing.assert_close(got, plan.probe.probs(mean), atol=1e-4, rtol=1e-3)


def test_window_read_ignores_left_padding(model, plan):
    short, long = "Hi", "Please tell me a long story about the sea and the wind"
    windowed = plan.replace(read="window", window=6)
    with patch_plan(model, windowed) as handle:
        _forward(model, *model.encode([short, long], chat=False))
        together = handle.decisions().posterior
        _forward(model, *model.encode([short], chat=False))
        alone = handle.decisions().posterior
    torch.testing.assert_close(alone, together[:1], atol=1e-5, rtol=1e-4)


def test_mean_read_is_the_capture_mean_pool_of_the_whole_prompt(model, plan):
    short, long = "Hi", "Please tell me a long story about the sea and the wind"
    soft = plan.probe.with_calibration(temperature=200.0)  # unsaturated: every token counts
    plan = plan.replace(probe=soft)
    mean = plan.replace(read="mean")
    with patch_plan(model, mean) as handle:
        _forward(model, *model.encode([short, long]))
        together = handle.decisions().posterior
        _forward(model, *model.encode([short]))
        alone = handle.decisions().posterior
    pooled = osteer.capture(model, [short, long], READ, pool="mean", progress=False)[READ]
    expected = plan.probe.probs(pooled.float())
    torch.testing.assert_close(together, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone, expected[:1], atol=1e-5, rtol=1e-4)  # padding masked
    last = plan.probe.probs(osteer.capture(model, [long], READ, progress=False)[READ].float())
    assert not torch.allclose(together[1:], last, atol=1e-3)  # not the last token's reading
    with patch_plan(model, plan.replace(read="window", window=10_000)) as handle:
        _forward(model, *model.encode([short, long]))
        torch.testing.assert_close(handle.decisions().posterior, together, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("read", ["mean", "last+mean"])
def test_pooled_reads_latch_at_the_prompt_pass_and_compile_fullgraph(model, plan, batch, read):
    ids, mask = batch
    if read == "mean":
        pooled, trace = plan.replace(read="mean"), False
    else:
        pooled = plan.replace(probe=_last_mean(plan.probe, temperature=1.0), read="last+mean")
        trace = True
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    with torch.no_grad(), patch_plan(model, pooled, trace=trace) as handle:
        eager = model.hf(**kwargs).logits
        decided = handle.decisions().posterior
        torch._dynamo.reset()  # fullgraph=True raises on any graph break or host sync
        compiled = torch.compile(model.hf, fullgraph=True, backend="eager")(**kwargs).logits
        torch.testing.assert_close(handle.decisions().posterior, decided)
        _generate(model, ids, mask, n=3)  # decode steps keep the prompt pass's decision
        torch.testing.assert_close(handle.decisions().posterior, decided)
    torch.testing.assert_close(compiled, eager)


@pytest.mark.parametrize("read", ["mean", "last+mean"])
@pytest.mark.parametrize("backend_name", ["hf", "tl", "nnsight"])
def test_pooled_reads_see_the_padding_mask_on_a_pass_without_logits(
    model, plan, read, backend_name, tiny_models
):
    """A forward without logits (``backend.forward(..., logits=False)``, the demo report's
    decisions) ran ``base_model`` and skipped the plan's top-level pre-hook that keeps the
    attention mask, so a pooled read averaged left padding in (or a stale mask): a short prompt
    read differently beside a longer one. On nnsight such a pass ran no module at all (the trace
    stopped before the first), so the decisions were the previous pass's."""
    if read == "mean":
        pooled = plan.replace(read="mean")
    else:
        pooled = plan.replace(probe=_last_mean(plan.probe, temperature=1.0), read="last+mean")
    short, long = BENIGN, VULNERABLE + " Please, I need to talk to someone about it tonight."
    if backend_name != "hf":  # same weights on its own HF module (TL rewires the one it wraps)
        model = tiny_models("llama", backend_name)
    backend = get_backend(model.backend)
    with torch.no_grad(), patch_plan(model, pooled) as handle:
        backend.forward(model, *model.encode([short]), logits=False)
        alone = handle.decisions().posterior
        ids, mask = model.encode([short, long])
        assert bool((mask[0] == 0).any())  # the short row is left-padded
        backend.forward(model, ids, mask, logits=False)
        without = handle.decisions().posterior
        backend.forward(model, ids, mask, logits=True)
        with_logits = handle.decisions().posterior
    torch.testing.assert_close(without, with_logits)
    torch.testing.assert_close(without[:1], alone, atol=1e-5, rtol=1e-4)


def test_monitor_probes_are_recorded_and_soft_policies_blend(model, plan, probe, batch):
    soft = plan.replace(
        policy=osteer.Policy(mode="soft", temperature=0.5), monitors={"risk": probe}
    )
    with patch_plan(model, soft) as handle:
        _forward(model, *batch)
        d = handle.decisions()
    torch.testing.assert_close(d.monitors["risk"], d.posterior)
    torch.testing.assert_close(d.gates, d.weights)
    assert 0 < d.gates[1, 1] < 1 and d.strategy == ["help", "guide"]


def test_batches_larger_than_the_preallocation_grow_it(model, plan):
    ids, mask = model.encode([BENIGN, VULNERABLE, BENIGN])
    with patch_plan(model, plan, max_batch=1) as handle:
        _forward(model, ids, mask)
        assert handle.decisions().strategy == ["help", "guide", "help"]


def test_patch_and_steer_dispatch_a_plan(model, plan, batch):
    with osteer.steer(model, plan) as handle:
        _forward(model, *batch)
        assert handle.decisions().strategy == ["help", "guide"]
    handle = osteer.patch(model, plan)
    assert handle.active
    handle.remove()
    assert not handle.active


def test_the_dynamo_hook_guard_flag_is_restored_when_the_last_plan_is_removed(model, plan):
    config = torch._dynamo.config
    before = config.skip_nnmodule_hook_guards
    try:
        config.skip_nnmodule_hook_guards = True
        first, second = osteer.patch(model, plan), osteer.patch(model, plan)
        assert config.skip_nnmodule_hook_guards is False  # compiled code guards on the hooks
        first.remove()
        assert config.skip_nnmodule_hook_guards is False  # one plan is still installed
        second.remove()
        assert config.skip_nnmodule_hook_guards is True
    finally:
        config.skip_nnmodule_hook_guards = before


def test_pack_round_trip_gives_the_same_decisions_and_logits(model, plan, batch, tmp_path):
    plan = plan.replace(schedule=(1.0, 0.5), monitors={"risk": plan.probe}, meta={"note": "test"})
    path = save_plan(plan, tmp_path / "control.safetensors")
    back = load_plan(path, model)
    assert (
        back.identity == plan.identity
        and back.meta == {"note": "test"}
        and back.schedule == (1.0, 0.5)
    )
    with patch_plan(model, plan):
        want = _forward(model, *batch)
    with patch_plan(model, back):
        got = _forward(model, *batch)
    torch.testing.assert_close(got, want)


def test_pack_for_another_model_is_refused(plan, tmp_path, tiny_models):
    path = save_plan(plan, tmp_path / "control.safetensors")
    other = tiny_models("llama", "hf", seed=1)
    with pytest.raises(
        ModelMismatchError, match=r"this control pack was made for model .* model_fingerprint="
    ):
        load_plan(path, other)
    with pytest.raises(ModelMismatchError, match=r"this control plan was made for model"):
        patch_plan(other, plan)


def test_corrupt_or_unidentified_packs_are_refused(plan, probe, vector, tmp_path):
    from safetensors.torch import load_file, save_file

    path = save_plan(plan, tmp_path / "control.safetensors")
    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    del tensors["policy/payoff"]
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ArtifactError, match=r"lacks tensors \['policy/payoff'\]"):
        load_plan(tmp_path / "bad.safetensors")
    anonymous = ControlPlan(probe, [bind(vector, ["guide"])])
    with pytest.raises(ArtifactError, match=r"does not know which model it is for"):
        save_plan(anonymous, tmp_path / "anon.safetensors")


def test_invalid_plans_raise_one_sentence(model, plan, probe, vector):
    before = _layer_hooks(model)
    with pytest.raises(
        ValueError, match=r"binding 'v' names strategies \['comply'\] that the policy lacks"
    ):
        ControlPlan(probe, [bind(vector, {"comply": 1.0}, name="v")])
    with pytest.raises(ValueError, match=r"read='first' is not a read mode"):
        plan.replace(read="first")
    with pytest.raises(WidthMismatchError, match=r"binding 'w' has width 8 but the probe has 64"):
        ControlPlan(probe, [bind({"blocks.1.hook_resid_post": torch.ones(8)}, ["guide"], name="w")])
    far = ControlPlan(probe, [bind({"blocks.9.hook_resid_post": torch.ones(64)}, ["guide"])])
    with pytest.raises(SiteError, match=r"layer 9 .* out of range for a model with 3 layers"):
        patch_plan(model, far)
    assert _layer_hooks(model) == before


def test_static_and_conditional_parts_split_for_export(plan, vector):
    always = bind(vector, {"help": 1.0, "guide": 1.0, "redirect": 1.0}, name="always")
    mixed = plan.replace(bindings=[*plan.bindings, always])
    assert (
        mixed.conditional_parts() is None or mixed.replace(positions="all").static_vectors() != {}
    )
    static = mixed.static_vectors()
    torch.testing.assert_close(
        static["blocks.1.hook_resid_post"], vector["blocks.1.hook_resid_post"]
    )
    assert [b.name for b in mixed.conditional_parts().bindings] == ["random"]


def test_rule_plan_steers_only_above_threshold(model, probe, vector, batch):
    binary = LinearProbe(
        READ, ("safe", "risky"), probe.weight[[0, 2]], probe.bias[[0, 2]], probe.mean, probe.scale
    )
    plan = ControlPlan.rule(binary, vector, 3.0, threshold=0.5)
    with patch_plan(model, plan) as handle:
        _forward(model, *batch)
        assert handle.decisions().strategy == ["pass", "steer"]


def test_patched_forward_compiles_fullgraph_without_breaks(model, plan, batch):
    ids, mask = batch
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    with torch.no_grad(), patch_plan(model, plan) as handle:
        eager = model.hf(**kwargs).logits
        torch._dynamo.reset()  # fullgraph=True raises on any graph break
        compiled = torch.compile(model.hf, fullgraph=True, backend="eager")(**kwargs).logits
        assert handle.decisions().strategy == ["help", "guide"]
    torch.testing.assert_close(compiled, eager)


def test_static_cache_compiled_generate_matches_eager(model, plan, batch):
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True, backend="aot_eager", mode=None)
    config._compile_all_devices = True
    kwargs = dict(max_new_tokens=5, do_sample=False, pad_token_id=model.pad_id)
    with torch.no_grad(), patch_plan(model, plan) as handle:
        eager = model.hf.generate(*batch[:1], attention_mask=batch[1], **kwargs)
        torch._dynamo.reset()
        compiled = model.hf.generate(
            *batch[:1],
            attention_mask=batch[1],
            cache_implementation="static",
            compile_config=config,
            **kwargs,
        )
        d = handle.decisions()
    assert hasattr(model.hf, "_compiled_call")  # decode steps ran through the compiled forward
    assert torch.equal(compiled, eager) and d.strategy == ["help", "guide"] and d.step == 4


def test_decisions_are_copies_that_later_passes_leave_alone(model, plan, batch):
    """``decisions()`` copies to the CPU: on a CPU model ``.cpu()`` alone returns views of the
    live per-row buffers, so decisions kept from one batch changed under the next pass (found
    collecting posteriors batch by batch in a script)."""
    ids, mask = batch
    with patch_plan(model, plan) as handle:
        _forward(model, ids, mask)
        first = handle.decisions()
        kept = {k: getattr(first, k).clone() for k in ("posterior", "gates", "weights")}
        _forward(model, ids.flip(0), mask.flip(0))  # rows swapped: every buffer row changes
        second = handle.decisions()
    assert not torch.equal(second.posterior, kept["posterior"])  # the buffers did change
    for k, v in kept.items():
        assert torch.equal(getattr(first, k), v), k
    assert first.strategy == ["help", "guide"] and second.strategy == ["guide", "help"]


def test_compiled_decode_steps_compile_once(model, plan, batch):
    """The plan's compiled decode step is one graph: no recompile on the second step (the
    position tracker once guarded on the previous pass's ids, prompt-wide after the prefill and
    one token wide after each decode step, so step two recompiled), nor on a second generate."""
    from torch._dynamo.utils import counters
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True, backend="eager", mode=None)
    config._compile_all_devices = True
    kwargs = dict(
        max_new_tokens=6, do_sample=False, pad_token_id=model.pad_id, cache_implementation="static"
    )
    with torch.no_grad(), patch_plan(model, plan):
        eager = model.hf.generate(
            *batch[:1],
            attention_mask=batch[1],
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=model.pad_id,
        )
        torch._dynamo.reset()
        counters.clear()
        first = model.hf.generate(
            *batch[:1], attention_mask=batch[1], compile_config=config, **kwargs
        )
        graphs = counters["stats"]["unique_graphs"]
        again = model.hf.generate(
            *batch[:1], attention_mask=batch[1], compile_config=config, **kwargs
        )
        assert counters["stats"]["unique_graphs"] == graphs == 1
    assert torch.equal(first, eager) and torch.equal(again, eager)


def test_what_a_pass_leaves_for_the_next_lives_in_fixed_buffers(model, plan, batch):
    """CUDA-graph replay (``mode="reduce-overhead"``) overwrites a graph's outputs when any graph
    replays next, so state one pass leaves for the next (each row's prompt end) must be updated
    in place at a fixed, static address, never be a tensor the previous pass made. Found on an
    H200: the interleaved decode-step benchmark's second plan step read an overwritten output."""
    ids, mask = batch
    with torch.no_grad(), patch_plan(model, plan) as handle:
        tracker = handle._state.tracker
        _generate(model, ids, mask, n=2)
        buf = tracker._local.end_buf
        first = tracker.prompt_end.clone()
        _generate(model, ids, mask, n=3)  # a new prompt pass and decode steps, same batch
        assert tracker._local.end_buf is buf and tracker.prompt_end.data_ptr() == buf.data_ptr()
        assert hasattr(buf, "_dynamo_static_input_type")  # marked static for graph replay
        torch.testing.assert_close(tracker.prompt_end, first)  # re-latched, same prompts
        _generate(model, ids[:1], mask[:1], n=2)  # another batch: nothing carries over
        assert tracker.prompt_end.shape == (1,) and tracker.prompt_end[0] == first[0]


@pytest.mark.parametrize("backend", ["tl", "nnsight"])
def test_backends_agree_with_hf(model, plan, batch, backend, tiny_models):
    other = tiny_models(
        "llama", backend
    )  # same weights on its own HF module (TL rewires the one it wraps)
    with patch_plan(model, plan):
        want_logits, want_tokens = _forward(model, *batch), _generate(model, *batch, n=4)
    with patch_plan(other, plan) as handle:
        logits, tokens = _forward(other, *batch), _generate(other, *batch, n=4)
        assert handle.decisions().strategy == ["help", "guide"]
    real = batch[1].bool()
    assert (logits[real] - want_logits[real]).abs().max() <= 1e-4
    assert torch.equal(tokens[:, -4:], want_tokens[:, -4:])


@pytest.mark.parametrize("backend", ["tl", "nnsight"])
def test_backends_agree_with_hf_on_a_mean_read(model, plan, backend, tiny_models):
    other = tiny_models("llama", backend)
    soft = plan.probe.with_calibration(temperature=200.0)  # unsaturated: every token counts
    mean = plan.replace(probe=soft, read="mean")
    batch = model.encode(["Hi", "Please tell me a long story about the sea and the wind"])
    with patch_plan(model, mean) as handle:
        _forward(model, *batch)
        want = handle.decisions().posterior
    with patch_plan(other, mean) as handle:
        _forward(other, *batch)  # left padding masked on every backend
        torch.testing.assert_close(handle.decisions().posterior, want, atol=1e-5, rtol=1e-4)
    pooled = osteer.capture(model, ["Hi"], READ, pool="mean", progress=False)[READ]
    torch.testing.assert_close(want[:1], soft.probs(pooled.float()), atol=1e-5, rtol=1e-4)


def _last_mean(probe, seed=2, temperature=200.0):
    """A ``pool="last+mean"`` probe: the planted weights on the last token and random ones on the
    prompt mean, unsaturated (so every token and the padding mask would show)."""
    g = torch.Generator().manual_seed(seed)
    d = probe.d_model
    weight = torch.cat([probe.weight, 40.0 * torch.randn(probe.weight.shape, generator=g)], 1)
    zero, one = torch.zeros(2 * d), torch.ones(2 * d)
    both = LinearProbe(
        probe.site, probe.labels, weight, probe.bias, zero, one, meta={"pool": "last+mean"}
    )
    return both.with_calibration(temperature=temperature)


def test_last_mean_read_is_the_capture_last_mean_pool_and_monitors_read_their_half(model, plan):

    short, long = "Hi", "Please tell me a long story about the sea and the wind"
    both = _last_mean(plan.probe)
    assert (both.pool, both.n_features, both.d_model) == (
        "last+mean",
        2 * model.d_model,
        model.d_model,
    )
    last_probe = plan.probe.with_calibration(temperature=200.0)
    mean_probe = dataclasses.replace(last_probe, meta={"pool": "mean"})
    lm = plan.replace(
        probe=both, read="last+mean", monitors={"last": last_probe, "mean": mean_probe}
    )
    with patch_plan(model, lm) as handle:
        _forward(model, *model.encode([short, long]))
        together = handle.decisions()
        _forward(model, *model.encode([short]))
        alone = handle.decisions()
    acts = {
        pool: osteer.capture(model, [short, long], READ, pool=pool, progress=False)[READ].float()
        for pool in ("last", "mean", "last+mean")
    }
    torch.testing.assert_close(acts["last+mean"], torch.cat([acts["last"], acts["mean"]], -1))
    expected = both.probs(acts["last+mean"])
    torch.testing.assert_close(together.posterior, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone.posterior, expected[:1], atol=1e-5, rtol=1e-4)  # padding
    # a monitor fit on the last token (or the mean) reads its own half of [last, mean]
    want_last, want_mean = last_probe.probs(acts["last"]), mean_probe.probs(acts["mean"])
    torch.testing.assert_close(together.monitors["last"], want_last, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together.monitors["mean"], want_mean, atol=1e-5, rtol=1e-4)
    for pool in ("last", "mean"):  # neither half alone gives the reading
        half = acts[pool].repeat(1, 2) if pool == "last" else acts["mean"].repeat(1, 2)
        assert not torch.allclose(together.posterior, both.probs(half), atol=1e-3)


def test_a_last_mean_monitor_at_its_own_site_reads_the_capture_last_mean_pool(model, plan):
    """A risk monitor fit on last+mean (a (C, 2d) weight) at a later layer than the gate reads
    ``capture(pool="last+mean")`` at its own site, left padding masked; under a plan without
    actions nothing steers the stream it reads."""
    site = "blocks.1.hook_resid_post"
    g = torch.Generator().manual_seed(5)
    d = model.d_model
    risk = LinearProbe(
        site,
        ("not_malicious", "malicious"),
        40.0 * torch.randn(2, 2 * d, generator=g),
        torch.zeros(2),
        torch.zeros(2 * d),
        torch.ones(2 * d),
        meta={"pool": "last+mean", "task": "risk"},
    ).with_calibration(temperature=20.0)
    lm = plan.replace(
        probe=_last_mean(plan.probe), read="last+mean", bindings=[], monitors={"risk": risk}
    )
    prompts = ["Hi", "Please tell me a long story about the sea and the wind"]
    with patch_plan(model, lm) as handle:
        _forward(model, *model.encode(prompts))
        got = handle.decisions().monitors["risk"]
    both = osteer.capture(model, prompts, site, pool="last+mean", progress=False)[site].float()
    torch.testing.assert_close(got, risk.probs(both), atol=1e-5, rtol=1e-4)
    last = osteer.capture(model, prompts, site, progress=False)[site].float()
    assert not torch.allclose(got, risk.probs(last.repeat(1, 2)), atol=1e-3)  # the mean counts


@pytest.mark.parametrize("backend", ["tl", "nnsight"])
def test_backends_agree_with_hf_on_a_last_mean_read(model, plan, backend, tiny_models):
    other = tiny_models("llama", backend)
    lm = plan.replace(probe=_last_mean(plan.probe), read="last+mean")
    batch = model.encode(["Hi", "Please tell me a long story about the sea and the wind"])
    with patch_plan(model, lm) as handle:
        _forward(model, *batch)
        want = handle.decisions().posterior
    with patch_plan(other, lm) as handle:
        _forward(other, *batch)  # left padding masked on every backend
        torch.testing.assert_close(handle.decisions().posterior, want, atol=1e-5, rtol=1e-4)
    pooled = osteer.capture(model, ["Hi"], READ, pool="last+mean", progress=False)[READ]
    torch.testing.assert_close(want[:1], lm.probe.probs(pooled.float()), atol=1e-5, rtol=1e-4)


def test_a_last_mean_probe_needs_the_last_mean_read_and_survives_a_pack(model, plan, tmp_path):
    both = _last_mean(plan.probe)
    for read in ("last", "mean", "window", "running"):
        with pytest.raises(ValueError, match="pool='last\\+mean'.*pass read='last\\+mean'"):
            plan.replace(probe=both, read=read)
    with pytest.raises(ValueError, match="monitor 'risk'.*read='last\\+mean'"):
        plan.replace(monitors={"risk": both})
    lm = plan.replace(probe=both, read="last+mean", monitors={"risk": plan.probe})
    loaded = load_plan(save_plan(lm, tmp_path / "control.safetensors"), model)
    assert loaded.read == "last+mean" and loaded.probe.pool == "last+mean"
    assert loaded.monitors["risk"].pool == "last"
    torch.testing.assert_close(loaded.probe.weight, both.weight)
    batch = model.encode([BENIGN, VULNERABLE])
    with patch_plan(model, lm) as handle:
        _forward(model, *batch)
        want = handle.decisions()
    with patch_plan(model, loaded) as handle:
        _forward(model, *batch)
        got = handle.decisions()
    assert got.strategy == want.strategy
    torch.testing.assert_close(got.posterior, want.posterior)


@pytest.fixture
def cuda_model():
    from oyster_steer.testing import default_tokenizer, tiny_hf_model

    return osteer.from_hf(tiny_hf_model("llama").cuda(), default_tokenizer())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_hooks_never_sync_with_the_host(cuda_model, plan):
    import warnings

    ids, mask = cuda_model.encode([BENIGN, VULNERABLE])
    with (
        torch.no_grad(),
        patch_plan(cuda_model, plan) as handle,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            cuda_model.hf.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=4,
                do_sample=False,
                pad_token_id=cuda_model.pad_id,
            )
        finally:
            torch.cuda.set_sync_debug_mode(0)
        assert handle.decisions().strategy == ["help", "guide"]
    ours = [w for w in caught if "oyster_steer" in str(w.filename)]
    assert ours == [], [f"{w.filename}:{w.lineno} {w.message}" for w in ours]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_generation_matches_eager(cuda_model, plan):
    from transformers import CompileConfig

    ids, mask = cuda_model.encode([BENIGN, VULNERABLE])
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=cuda_model.pad_id)
    config = CompileConfig(
        fullgraph=True, mode="reduce-overhead"
    )  # CUDA-graph replay of decode steps
    with torch.no_grad(), patch_plan(cuda_model, plan) as handle:
        eager = cuda_model.hf.generate(ids, attention_mask=mask, **kwargs)
        graphed = cuda_model.hf.generate(
            ids, attention_mask=mask, cache_implementation="static", compile_config=config, **kwargs
        )
        assert handle.decisions().strategy == ["help", "guide"] and handle.decisions().step == 7
    assert torch.equal(graphed, eager)


def test_build_plan_cli_writes_a_pack_from_probe_and_vector_files(
    model, probe, vector, tmp_path, capsys
):
    from oyster_steer.cli import main
    from oyster_steer.probes._probe import save_probe
    from oyster_steer.testing import default_tokenizer, tiny_hf_model
    from oyster_steer.vectors._vector import SteeringVector, save_vector

    tiny_hf_model("llama").save_pretrained(tmp_path / "m")
    default_tokenizer().save_pretrained(tmp_path / "m")
    probe_path = save_probe(probe, tmp_path / "intent.safetensors", model)
    vec = SteeringVector.from_tensors(model, vector, method="mean_diff", strength=2.5)
    vec_path = save_vector(vec, tmp_path / "constructive.safetensors")
    out = tmp_path / "control.safetensors"
    argv = ["build-plan", "--model", str(tmp_path / "m"), "--probe", str(probe_path)]
    argv += [
        "--monitor",
        f"risk={probe_path}",
        "--vector",
        f"constructive={vec_path}:guide=1x,help=4",
    ]
    argv += ["--schedule", "1", "0.5", "--out", str(out)]
    assert main(argv) == 0
    assert "saved control pack" in capsys.readouterr().out
    plan = load_plan(out, model)
    assert plan.bindings[0].strengths == {"guide": 2.5, "help": 4.0}
    assert plan.schedule == (1.0, 0.5) and list(plan.monitors) == ["risk"]
    assert (
        plan.meta["command"].startswith("oyster-steer build-plan --model")
        and "guide=1x" in plan.meta["command"]
    )
    assert plan.read == "last" and "--read" not in plan.meta["command"]


def test_a_mean_pooled_probe_is_read_as_a_mean_by_plans_packs_and_build_plan(
    model, plan, probe, vector, tmp_path, capsys
):

    from oyster_steer.cli import main
    from oyster_steer.probes._probe import load_probe, save_probe
    from oyster_steer.testing import default_tokenizer, tiny_hf_model
    from oyster_steer.vectors._vector import SteeringVector, save_vector

    assert probe.pool == "last"  # no meta: the last prompt token
    pooled = dataclasses.replace(probe, meta=probe.meta | {"pool": "mean"})
    with pytest.raises(ValueError, match="read='mean'"):
        plan.replace(probe=pooled)  # a last-token read of mean-pooled weights
    with pytest.raises(ValueError, match="monitor 'risk'.*read='mean'"):
        plan.replace(monitors={"risk": pooled})
    mean = plan.replace(probe=pooled, monitors={"risk": pooled}, read="mean")
    loaded = load_plan(save_plan(mean, tmp_path / "control.safetensors"), model)
    assert loaded.read == "mean" and loaded.probe.pool == loaded.monitors["risk"].pool == "mean"
    # build-plan reads the probe's own features unless --read says otherwise
    tiny_hf_model("llama").save_pretrained(tmp_path / "m")
    default_tokenizer().save_pretrained(tmp_path / "m")
    probe_path = save_probe(pooled, tmp_path / "intent.safetensors", model)
    assert load_probe(probe_path, model).pool == "mean"
    vec = SteeringVector.from_tensors(model, vector, method="mean_diff", strength=2.5)
    vec_path = save_vector(vec, tmp_path / "constructive.safetensors")
    argv = ["build-plan", "--model", str(tmp_path / "m"), "--probe", str(probe_path)]
    argv += ["--monitor", f"risk={probe_path}", "--vector", f"constructive={vec_path}:guide=1x"]
    assert main([*argv, "--out", str(tmp_path / "built.safetensors")]) == 0
    assert load_plan(tmp_path / "built.safetensors", model).read == "mean"
    assert main([*argv, "--read", "last", "--out", str(tmp_path / "bad.safetensors")]) == 2
    assert "read='mean'" in capsys.readouterr().err


# -- bindings that cannot backfire ----------------------------------------------------------------


def _trained(model, vector, target: str, tmp_path=None):
    """A vector whose metadata says what it was trained toward, as train_vector records it."""
    from oyster_steer.vectors._vector import SteeringVector

    return SteeringVector.from_tensors(
        model, vector, method="learned", strength=2.0, meta={"target": target}
    )


def test_anti_refusal_vector_on_the_malicious_strategy_is_refused(model, probe, vector):
    from oyster_steer import UnsafeBindingError
    from oyster_steer.control._plan_check import malicious_strategies

    constructive, refusal = (
        _trained(model, vector, "constructive"),
        _trained(model, vector, "refusal"),
    )
    assert malicious_strategies(osteer.Policy()) == ("redirect",)
    with pytest.raises(
        UnsafeBindingError,
        match=r"binding 'constructive' is an anti-refusal vector bound to 'redirect' \(strength 2\), "
        r"the strategy the policy picks for malicious users, so it would steer them toward compliance: "
        r"bind it to 'guide' only .*allow_compliance_steering=True",
    ):
        ControlPlan(probe, [bind(constructive, ["guide", "redirect"], name="constructive")])
    with pytest.raises(UnsafeBindingError, match=r"binding 'anti' is a negated boundary vector"):
        ControlPlan(probe, [bind(refusal, {"redirect": -1.0}, name="anti")])
    with pytest.raises(UnsafeBindingError, match=r"binding 'guide' is an anti-refusal"):
        ControlPlan(probe, [bind(vector, {"redirect": 1.0}, name="guide")])  # role from the name
    safe = ControlPlan(
        probe, [bind(constructive, ["guide"], name="constructive"), bind(refusal, ["redirect"])]
    )
    assert [b.strengths for b in safe.bindings] == [{"guide": 2.0}, {"redirect": 2.0}]
    # a policy that picks "guide" for malicious users makes "guide" the guarded strategy
    payoff = osteer.Policy().payoff.clone()
    payoff[1, 3] = 2.0
    with pytest.raises(UnsafeBindingError, match=r"bound to 'guide'"):
        ControlPlan(probe, [bind(constructive, ["guide"])], osteer.Policy(payoff))
    deliberate = ControlPlan(
        probe, [bind(constructive, ["redirect"])], allow_compliance_steering=True
    )
    assert deliberate.bindings[0].strengths == {"redirect": 2.0}


def test_unsafe_pack_is_refused_at_load_unless_saved_as_deliberate(model, probe, vector, tmp_path):
    from oyster_steer import UnsafeBindingError

    constructive = _trained(model, vector, "constructive")
    identity = model_meta(model)
    plan = ControlPlan(
        probe,
        [bind(constructive, ["guide", "redirect"])],
        identity=identity,
        allow_compliance_steering=True,
    )
    path = save_plan(plan, tmp_path / "deliberate.safetensors")
    assert load_plan(path, model).allow_compliance_steering  # the choice travels with the pack
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    manifest = json.loads(meta["manifest"])
    del manifest["allow_compliance_steering"]  # a pack written before the check existed
    save_file(
        load_file(str(path)),
        str(tmp_path / "old.safetensors"),
        {**meta, "manifest": json.dumps(manifest)},
    )
    with pytest.raises(
        UnsafeBindingError, match=r"old.safetensors'.*rebuilt with `oyster-steer build-plan`"
    ):
        load_plan(tmp_path / "old.safetensors", model)
    assert load_plan(tmp_path / "old.safetensors", model, allow_compliance_steering=True).bindings


def test_build_plan_defaults_bind_constructive_to_guide_and_refusal_to_redirect(
    model, probe, vector, tmp_path, capsys
):
    from oyster_steer.cli import _plan, main
    from oyster_steer.probes._probe import save_probe
    from oyster_steer.testing import default_tokenizer, tiny_hf_model
    from oyster_steer.vectors._vector import save_vector

    assert _plan._DEFAULT_VECTORS == (
        "constructive=constructive.safetensors:guide=1x",
        "refusal=refusal.safetensors:redirect=1x",
    )
    tiny_hf_model("llama").save_pretrained(tmp_path / "m")
    default_tokenizer().save_pretrained(tmp_path / "m")
    probe_path = save_probe(probe, tmp_path / "intent.safetensors", model)
    for target in ("constructive", "refusal"):
        save_vector(_trained(model, vector, target), tmp_path / f"{target}.safetensors")
    base = ["build-plan", "--model", str(tmp_path / "m"), "--probe", str(probe_path)]
    base += ["--monitor", f"risk={probe_path}"]
    specs = [v.replace("=", f"={tmp_path}/", 1) for v in _plan._DEFAULT_VECTORS]
    argv = (
        base
        + [x for v in specs for x in ("--vector", v)]
        + ["--out", str(tmp_path / "p.safetensors")]
    )
    assert main(argv) == 0
    plan = load_plan(tmp_path / "p.safetensors", model)
    assert {b.name: b.strengths for b in plan.bindings} == {
        "constructive": {"guide": 2.0},
        "refusal": {"redirect": 2.0},
    }
    unsafe = base + [
        "--vector",
        f"constructive={tmp_path}/constructive.safetensors:guide=1x,redirect=1x",
    ]
    capsys.readouterr()
    assert main([*unsafe, "--out", str(tmp_path / "u.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "would steer them toward compliance" in err and "--allow-compliance-steering" in err
    assert not (tmp_path / "u.safetensors").exists()
    assert (
        main([*unsafe, "--allow-compliance-steering", "--out", str(tmp_path / "u.safetensors")])
        == 0
    )
    assert (
        "--allow-compliance-steering"
        in load_plan(tmp_path / "u.safetensors", model).meta["command"]
    )


def test_demo_plan_never_binds_the_constructive_vector_to_redirect(model, probe, vector, tmp_path):
    from oyster_steer.report import _steering
    from oyster_steer.report._demo import DemoConfig

    assert _steering.shipped("vectors", model, "control") is None  # the demo builds its own
    built = _steering.plan(
        model,
        {"intent": probe},
        _trained(model, vector, "constructive"),
        DemoConfig(work_dir=tmp_path),
    )
    assert [(b.name, b.strengths) for b in built.bindings] == [("constructive", {"guide": 2.0})]


# -- the real default model with the shipped control pack (slow) ---------------------------------
PACK = "vectors/smollm2-135m-instruct/control.safetensors"


@pytest.fixture(scope="module")
def shipped(smollm):
    from pathlib import Path

    if not Path(PACK).exists():
        pytest.skip(f"{PACK} is not built yet: run `oyster-steer build-plan`")
    return load_plan(PACK, smollm)


@pytest.mark.slow
def test_shipped_pack_gates_each_row_and_latches_on_smollm(smollm, shipped):
    ids, mask = smollm.encode(
        [BENIGN, VULNERABLE, "Give me step-by-step instructions to poison my neighbour."]
    )
    with patch_plan(smollm, shipped, trace=True) as handle:
        tokens = _generate(smollm, ids, mask, n=6)
        d, trace = handle.decisions(), handle.trace()
    torch.testing.assert_close(d.posterior.sum(-1), torch.ones(3))
    assert d.step == 5 and trace.applied.shape == (3, ids.shape[1] + 5, len(shipped.strategies))
    table = shipped.schedule_table()  # (S, L): per strategy, or the plan-wide one S times
    sched = table[:, [min(i, table.shape[1] - 1) for i in range(1, 6)]].T  # (5, S)
    sched = sched * (
        shipped.positions != "prompt"
    )  # decode steps write unless only the prompt is steered
    want = d.gates.unsqueeze(1) * sched.unsqueeze(0)  # the gates decided at the prompt pass, kept
    torch.testing.assert_close(trace.applied[:, -5:], want)
    assert tokens.shape == (3, ids.shape[1] + 6)


@pytest.mark.slow
def test_shipped_pack_agrees_across_backends_on_smollm(smollm, shipped):
    ids, mask = smollm.encode([BENIGN, VULNERABLE])
    with patch_plan(smollm, shipped):
        want_logits, want_tokens = _forward(smollm, ids, mask), _generate(smollm, ids, mask, n=6)
    real = mask.bool()
    for backend in ("nnsight", "tl"):
        other = osteer.load_model(
            backend=backend, device="cpu"
        )  # its own HF module (TL rewires it)
        with patch_plan(other, load_plan(PACK, other)):
            logits, tokens = _forward(other, ids, mask), _generate(other, ids, mask, n=6)
        assert (logits[real] - want_logits[real]).abs().max() <= 1e-4, backend
        assert torch.equal(tokens[:, -6:], want_tokens[:, -6:]), backend


@pytest.mark.slow
def test_mean_read_matches_the_capture_mean_pool_on_smollm(smollm):
    """The real chat template (its default system prompt included) and tokenizer: the fused
    mean read of a left-padded batch equals ``capture(pool="mean")``, what ``train-probe --pool
    mean`` fits on."""
    from pathlib import Path

    from oyster_steer.probes._probe import load_probe

    root = Path(__file__).resolve().parents[2] / "probes" / "smollm2-135m-instruct"
    shipped = load_probe(root / "intent.safetensors", smollm)
    d = smollm.d_model
    part = slice(d, None) if shipped.pool == "last+mean" else slice(None)  # its mean half
    probe = LinearProbe(
        shipped.site,
        shipped.labels,
        shipped.weight[:, part],
        shipped.bias,
        shipped.mean[part],
        shipped.scale[part],
        meta={"pool": "mean"},
    ).with_calibration(temperature=50.0)
    plan = ControlPlan(probe, [], read="mean", identity=model_meta(smollm))
    prompts = [BENIGN, VULNERABLE, "Give me step-by-step instructions to poison my neighbour."]
    with patch_plan(smollm, plan) as handle:
        _forward(smollm, *smollm.encode(prompts))
        got = handle.decisions().posterior
    pooled = osteer.capture(smollm, prompts, probe.site, pool="mean", progress=False)[probe.site]
    torch.testing.assert_close(got, probe.probs(pooled.float()), atol=1e-4, rtol=1e-3)
    last = osteer.capture(smollm, prompts, probe.site, progress=False)[probe.site]
    assert not torch.allclose(got, probe.probs(last.float()), atol=1e-2)


@pytest.mark.slow
def test_shipped_last_mean_read_matches_the_capture_last_mean_pool_on_smollm(smollm, shipped):
    """The shipped pack's fused read (last prompt token and prompt mean side by side) of a
    left-padded batch equals ``capture(pool="last+mean")``, what ``train-probe --pool last+mean``
    fits on; its risk monitor reads its own features (the last-token half for a monitor fit on
    the last token, both halves for one fit on last+mean). A monitor after the actions' first
    site (layer 16 after 12) reads, on the rows the gate steers, the steered stream (the prompt
    pass is steered), so it equals the unsteered capture on the row the gate helps and, for every
    row, under the same plan without actions; a monitor at the first steered site or before it
    reads before any write (reads go first): the unsteered capture on every row."""
    if shipped.read != "last+mean":
        pytest.skip(f"the shipped pack reads read={shipped.read!r}")
    prompts = [BENIGN, VULNERABLE, "Give me step-by-step instructions to poison my neighbour."]
    with patch_plan(smollm, shipped) as handle:
        _forward(smollm, *smollm.encode(prompts))
        d = handle.decisions()
    probe, risk = shipped.probe, shipped.monitors["risk"]
    both = osteer.capture(smollm, prompts, probe.site, pool="last+mean", progress=False)
    torch.testing.assert_close(
        d.posterior, probe.probs(both[probe.site].float()), atol=1e-4, rtol=1e-3
    )
    own = osteer.capture(smollm, prompts, risk.site, pool=risk.pool, progress=False)[risk.site]
    unsteered = risk.probs(own.float())  # the monitor's own features (last token or last+mean)
    assert d.strategy == ["help", "guide", "redirect"]
    torch.testing.assert_close(d.monitors["risk"][0], unsteered[0], atol=1e-4, rtol=1e-3)
    first_write = min(exec_order(resolve_site(s, smollm.n_layers), True) for s in shipped.sites)
    if exec_order(resolve_site(risk.site, smollm.n_layers), False) > first_write:
        assert not torch.allclose(d.monitors["risk"][2], unsteered[2], atol=1e-2)  # steered row
    else:  # it reads before the first write: the unsteered stream on every row
        torch.testing.assert_close(d.monitors["risk"], unsteered, atol=1e-4, rtol=1e-3)
    bare = dataclasses.replace(shipped, bindings=[])
    with patch_plan(smollm, bare) as handle:
        _forward(smollm, *smollm.encode(prompts))
        monitored = handle.decisions().monitors["risk"]
    torch.testing.assert_close(monitored, unsteered, atol=1e-4, rtol=1e-3)
