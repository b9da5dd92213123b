"""NaN and infinity are refused at construction, save and load; the policy fails closed.

A NaN probe used to make the hard policy's argmax pick strategy 0 ("help") for every user: the
gate failed open. Now a non-finite posterior selects the policy's most cautious strategy (the
one with the best worst-case utility; for a rule, the "on" strategy) and is reported in
``Decisions.fault``. Every check here failed before the fix.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from oyster_steer import ArtifactError
from oyster_steer.control import ControlPlan, bind, load_plan, save_plan
from oyster_steer.control._policy import Policy, decide
from oyster_steer.models._artifacts import model_meta
from oyster_steer.probes._probe import LinearProbe, load_probe, save_probe
from oyster_steer.steering._steer import patch
from oyster_steer.vectors._vector import SteeringVector, load_vector, save_vector

BAD = [math.nan, math.inf, -math.inf]
READ = "blocks.0.hook_resid_post"
INTENTS = ("benign", "borderline", "vulnerable", "malicious")


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models("llama", "hf")


def _probe(d, **kw):
    g = torch.Generator().manual_seed(0)
    return LinearProbe(
        READ,
        INTENTS,
        torch.randn(4, d, generator=g),
        torch.zeros(4),
        torch.zeros(d),
        torch.ones(d),
        **kw,
    )


def _poisoned(t, value):
    t = t.clone()
    t.view(-1)[0] = value
    return t


@pytest.mark.parametrize("value", BAD)
def test_vector_refuses_nonfinite_direction_and_strength(model, value):
    good = torch.ones(model.d_model)
    with pytest.raises(ValueError, match="finite"):
        SteeringVector.from_tensors(model, {"blocks.1.hook_resid_post": _poisoned(good, value)})
    with pytest.raises(ValueError, match="strength"):
        SteeringVector.from_tensors(model, {"blocks.1.hook_resid_post": good}, strength=value)


@pytest.mark.parametrize("field", ["weight", "bias", "mean", "scale"])
def test_probe_refuses_nonfinite_tensors(model, field):
    probe = _probe(model.d_model)
    parts = {k: getattr(probe, k) for k in ("weight", "bias", "mean", "scale")}
    parts[field] = _poisoned(parts[field], math.nan)
    with pytest.raises(ValueError, match=field):
        LinearProbe(READ, INTENTS, **parts)


@pytest.mark.parametrize("value", BAD)
def test_probe_refuses_nonfinite_temperature_and_threshold(model, value):
    with pytest.raises(ValueError, match="temperature"):
        _probe(model.d_model, temperature=value)
    with pytest.raises(ValueError, match="threshold"):
        _probe(model.d_model, threshold=value)
    with pytest.raises(ValueError, match="threshold"):
        _probe(model.d_model).with_calibration(threshold=value)


@pytest.mark.parametrize("value", BAD)
def test_binding_and_policy_refuse_nonfinite(value):
    with pytest.raises(ValueError, match="strength"):
        bind({"blocks.1.hook_resid_post": torch.ones(8)}, {"guide": value})
    with pytest.raises(ValueError, match="finite"):
        bind({"blocks.1.hook_resid_post": _poisoned(torch.ones(8), value)}, {"guide": 1.0})
    with pytest.raises(ValueError, match="temperature"):
        Policy(mode="soft", temperature=value)


def test_save_refuses_tensors_poisoned_after_construction(model, tmp_path):
    v = SteeringVector.from_tensors(model, {"blocks.1.hook_resid_post": torch.ones(model.d_model)})
    v.directions["blocks.1.hook_resid_post"][0] = math.nan  # frozen object, mutable tensor
    with pytest.raises(ValueError, match="finite"):
        save_vector(v, tmp_path / "v.safetensors")
    assert not (tmp_path / "v.safetensors").exists()
    probe = _probe(model.d_model)
    probe.weight[0, 0] = math.inf
    with pytest.raises(ValueError, match="finite"):
        save_probe(probe, tmp_path / "p.safetensors", model)


def _rewrite(path, tensors=None, **meta_changes):
    """Re-write an artifact with some tensors or metadata fields replaced (a hostile file)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
        loaded = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    loaded.update(tensors or {})
    meta.update(meta_changes)
    save_file(loaded, str(path), metadata=meta)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_loaders_refuse_nonfinite_tensors_and_fields(model, tmp_path, value):
    v = SteeringVector.from_tensors(model, {"blocks.1.hook_resid_post": torch.ones(model.d_model)})
    path = save_vector(v, tmp_path / "v.safetensors")
    _rewrite(path, {"blocks.1.hook_resid_post": _poisoned(torch.ones(model.d_model), float(value))})
    with pytest.raises(ArtifactError, match="blocks.1.hook_resid_post"):
        load_vector(path, model)
    path = save_vector(v, tmp_path / "s.safetensors")
    _rewrite(path, strength=value)
    with pytest.raises(ArtifactError, match="strength"):
        load_vector(path, model)

    path = save_probe(_probe(model.d_model), tmp_path / "p.safetensors", model)
    _rewrite(path, {"weight": _poisoned(torch.ones(4, model.d_model), float(value))})
    with pytest.raises(ArtifactError, match="weight"):
        load_probe(path, model)
    for field in ("temperature", "threshold"):
        path = save_probe(_probe(model.d_model), tmp_path / f"{field}.safetensors", model)
        _rewrite(path, **{field: value})
        with pytest.raises(ArtifactError, match=field):
            load_probe(path, model)


def test_plan_pack_refuses_nonfinite(model, tmp_path):
    plan = ControlPlan(
        _probe(model.d_model),
        [bind({"blocks.1.hook_resid_post": torch.ones(model.d_model)}, {"guide": 2.0}, name="v")],
        identity=model_meta(model),
    )
    path = save_plan(plan, tmp_path / "plan.safetensors")
    _rewrite(path, {"vectors/v/blocks.1.hook_resid_post": torch.full((model.d_model,), math.nan)})
    with pytest.raises(ArtifactError, match="vectors/v/blocks.1.hook_resid_post"):
        load_plan(path, model)
    path = save_plan(plan, tmp_path / "plan2.safetensors")
    _rewrite(path, {"schedule": torch.tensor([math.inf])})
    with pytest.raises(ArtifactError, match="schedule"):
        load_plan(path, model)
    path = save_plan(plan, tmp_path / "plan3.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        manifest = json.loads(f.metadata()["manifest"])
    manifest["bindings"][0]["strengths"]["guide"] = float("nan")
    _rewrite(path, manifest=json.dumps(manifest))
    with pytest.raises(ArtifactError, match="strength"):
        load_plan(path, model)


def test_decide_fails_closed_on_a_nonfinite_posterior():
    policy = Policy()
    post = torch.tensor([[math.nan] * 4, [1.0, 0, 0, 0], [math.inf, 0, 0, 0]])
    for mode in ("hard", "soft"):
        eu, weights, gates = decide(post, policy.payoff, mode, 0.1)
        cautious = policy.strategies.index(policy.cautious)
        assert gates[0].tolist() == gates[2].tolist() == torch.eye(3)[cautious].tolist()
        assert torch.isfinite(weights).all() and torch.isfinite(gates).all()
        assert gates[1].argmax() == 0  # a finite benign posterior still gets help
    assert policy.cautious == "guide"  # best worst case: guide never drops below 0
    assert Policy.rule(0.5).cautious == "steer"


def test_decide_fail_closed_compiles_fullgraph():
    policy = Policy()
    fn = torch.compile(
        lambda p: decide(p, policy.payoff, "hard", 0.1), fullgraph=True, backend="eager"
    )
    gates = fn(torch.full((2, 4), math.nan))[2]
    assert gates.argmax(-1).tolist() == [1, 1]


def test_a_nan_probe_selects_the_cautious_strategy_and_reports_it(model):
    probe = _probe(model.d_model)
    plan = ControlPlan(
        probe,
        [bind({"blocks.1.hook_resid_post": torch.ones(model.d_model)}, {"guide": 2.0})],
        identity=model_meta(model),
    )
    probe.folded()[0].fill_(math.nan)  # poisoned after validation (e.g. by a bad device copy)
    ids, mask = model.encode(["hello", "how do I make bread?"])
    with patch(model, plan) as handle, torch.no_grad():
        model.hf(input_ids=ids, attention_mask=mask)
        d = handle.decisions()
    assert d.strategy == ["guide", "guide"]
    assert d.fault.tolist() == [True, True]
    assert all(row["fault"] for row in d.rows())
