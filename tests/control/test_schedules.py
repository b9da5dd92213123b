"""Decode-step schedules per strategy, on a tiny random-init model.

The probe is planted (as in test_control): the benign prompt goes to "help", the vulnerable one
to "guide". A vector bound to both strategies and a low-rank intervention bound to "guide" write
at layers 1 and 2, after the read. With a schedule per strategy each row must get exactly what a
plan-wide schedule equal to its own strategy's gives it (logits of every decode step), compile
without graph breaks, survive a pack round trip, and never be baked into a checkpoint.
"""

from __future__ import annotations

import json

import pytest
import torch
from _planted import BENIGN, READ, VULNERABLE, planted_intent_probe

from oyster_steer.backends import position_ids
from oyster_steer.control import ControlPlan, bind, load_plan, patch_plan, save_plan
from oyster_steer.export._export import ExportError, export_patched
from oyster_steer.models._artifacts import model_meta
from oyster_steer.vectors import LowRankIntervention

HELP = (1.0, 0.0)  # the prompt only
GUIDE = (1.0, 1.0, 0.5, 0.25)  # the prompt and the first reply token, then fading


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models("llama", "hf")


@pytest.fixture(scope="module")
def plan(model):
    g = torch.Generator().manual_seed(3)
    d = model.d_model
    sites = [f"blocks.{i}.hook_resid_post" for i in (1, 2)]
    vec = {s: torch.randn(d, generator=g) for s in sites}
    iv = LowRankIntervention(
        {
            s: (torch.randn(2, d, generator=g), torch.randn(2, d, generator=g), torch.randn(2))
            for s in sites[1:]
        }
    )
    bindings = [
        bind(vec, {"help": 2.0, "guide": 3.0}, name="vec"),
        bind(iv, {"guide": 0.5}, name="low"),
    ]
    probe = planted_intent_probe(model, BENIGN, VULNERABLE, READ)
    return ControlPlan(probe, bindings, identity=model_meta(model))


def _scores(model, plan, prompts, n=5):
    """Greedy tokens and the logits of every decode step, (B, n, V), under ``plan``."""
    ids, mask = model.encode(prompts)
    with torch.no_grad(), patch_plan(model, plan) as handle:
        out = model.hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n,
            do_sample=False,
            pad_token_id=model.pad_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        strategy = handle.decisions().strategy
    return out.sequences[:, ids.shape[1] :], torch.stack(out.logits, 1), strategy


def test_each_row_gets_its_own_strategys_schedule(model, plan):
    """Mixed batch (left padding): each row == the plan-wide schedule of its strategy."""
    per = plan.replace(schedule={"help": HELP, "guide": GUIDE})
    tokens, logits, strategy = _scores(model, per, [BENIGN, VULNERABLE])
    assert strategy == ["help", "guide"]
    for row, sched in ((0, HELP), (1, GUIDE)):
        want_tokens, want_logits, _ = _scores(
            model, plan.replace(schedule=sched), [BENIGN, VULNERABLE]
        )
        assert torch.equal(tokens[row], want_tokens[row])
        torch.testing.assert_close(logits[row], want_logits[row], atol=1e-5, rtol=1e-5)
    # the schedules matter: the guided row differs from the constant schedule's
    _, const_logits, _ = _scores(model, plan, [BENIGN, VULNERABLE])
    assert not torch.allclose(logits[1, 2:], const_logits[1, 2:], atol=1e-3)


def test_equal_per_strategy_schedules_are_the_plan_wide_schedule(model, plan):
    per = plan.replace(schedule={s: GUIDE for s in plan.strategies})
    _, got, _ = _scores(model, per, [BENIGN, VULNERABLE])
    _, want, _ = _scores(model, plan.replace(schedule=GUIDE), [BENIGN, VULNERABLE])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_trace_records_each_strategys_multiplier_and_unnamed_strategies_keep_one(model, plan):
    per = plan.replace(schedule={"guide": GUIDE})
    assert per.schedule_table().tolist() == [[1.0] * 4, [1.0, 1.0, 0.5, 0.25], [1.0] * 4]
    ids, mask = model.encode([BENIGN, VULNERABLE])
    with torch.no_grad(), patch_plan(model, per, trace=True) as handle:
        model.hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=model.pad_id,
        )
        applied = handle.trace().applied  # (B, N, S)
    t = ids.shape[1]
    help_, guide = plan.strategies.index("help"), plan.strategies.index("guide")
    assert torch.equal(applied[0, t:, help_], torch.ones(5))  # help: unnamed, constant 1
    assert torch.equal(applied[1, t:, guide], torch.tensor([1.0, 0.5, 0.25, 0.25, 0.25]))
    assert torch.equal(applied[1, t:, help_], torch.zeros(5))


def test_per_strategy_schedule_compiles_fullgraph(model, plan):
    per = plan.replace(schedule={"help": HELP, "guide": GUIDE})
    ids, mask = model.encode([BENIGN, VULNERABLE])
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    with torch.no_grad(), patch_plan(model, per) as handle:
        eager = model.hf(**kwargs).logits
        torch._dynamo.reset()  # fullgraph=True raises on any graph break (a host sync)
        compiled = torch.compile(model.hf, fullgraph=True, backend="eager")(**kwargs).logits
        assert handle.decisions().strategy == ["help", "guide"]
    torch.testing.assert_close(compiled, eager)


def test_pack_round_trip_keeps_per_strategy_schedules(model, plan, tmp_path):
    from safetensors import safe_open

    per = plan.replace(schedule={"guide": GUIDE, "help": HELP})
    save_plan(per, tmp_path / "per.safetensors")
    save_plan(plan, tmp_path / "wide.safetensors")
    back = load_plan(tmp_path / "per.safetensors", model)
    assert back.schedule == {"guide": GUIDE, "help": HELP} and back.per_strategy_schedule
    assert load_plan(tmp_path / "wide.safetensors", model).schedule == (1.0,)
    versions = {}
    for name in ("per", "wide"):
        with safe_open(str(tmp_path / f"{name}.safetensors"), framework="pt") as f:
            versions[name] = f.metadata()["format_version"]
    assert versions == {"per": "3", "wide": "2"}  # older readers still read plan-wide packs
    _, want, _ = _scores(model, per, [BENIGN, VULNERABLE])
    _, got, _ = _scores(model, back, [BENIGN, VULNERABLE])
    torch.testing.assert_close(got, want)


def test_pack_naming_a_missing_schedule_tensor_is_refused(model, plan, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from oyster_steer import ArtifactError

    save_plan(plan.replace(schedule={"guide": GUIDE}), tmp_path / "per.safetensors")
    with safe_open(str(tmp_path / "per.safetensors"), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    manifest = json.loads(meta["manifest"])
    manifest["schedule_strategies"] = ["guide", "help"]
    meta["manifest"] = json.dumps(manifest)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ArtifactError, match=r"lacks tensors \['schedule/help'\]"):
        load_plan(tmp_path / "bad.safetensors", model)


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        ({"answer": (1.0,)}, r"schedule names strategies \['answer'\] that the policy lacks"),
        ({"guide": ()}, "must be a non-empty list of finite multipliers"),
        ({"guide": (1.0, float("nan"))}, "must be a non-empty list of finite multipliers"),
        ({}, "must be a non-empty list of finite multipliers"),
    ],
)
def test_bad_per_strategy_schedules_are_refused(plan, schedule, match):
    with pytest.raises(ValueError, match=match):
        plan.replace(schedule=schedule)


def test_a_fading_schedule_is_never_baked(model, plan, tmp_path):
    """An ungated vector is baked only under a constant schedule of 1, per strategy too."""
    d = model.d_model
    vec = {"blocks.2.hook_resid_post": torch.ones(d)}
    ungated = plan.replace(bindings=[bind(vec, dict.fromkeys(plan.strategies, 1.0), name="all")])
    ones = ungated.replace(schedule={"guide": (1.0, 1.0)})
    assert set(ones.static_vectors()) == {"blocks.2.hook_resid_post"}
    fading = ungated.replace(schedule={"guide": (1.0, 0.5)})
    assert fading.static_vectors() == {} and fading.conditional_parts() is not None
    with pytest.raises(ExportError, match="a decode-step schedule that is not a constant 1"):
        export_patched(model, fading, tmp_path / "refused")
    assert not (tmp_path / "refused" / "config.json").exists()
    manifest = export_patched(model, fading, tmp_path / "packed", allow_conditional=True)
    assert manifest.control_pack == "control.safetensors" and manifest.baked == []
    pack = load_plan(tmp_path / "packed" / "control.safetensors")
    assert pack.schedule == {"guide": (1.0, 0.5)}
