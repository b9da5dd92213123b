"""calibrate_strength and StrengthCurve: measured curves on a tiny model, exact interpolation rules."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from oyster_steer.data import load_starter
from oyster_steer.steering._calibrate import StrengthCurve, calibrate_strength
from oyster_steer.testing import tiny_model
from oyster_steer.vectors._vector import SteeringVector

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def curve(model):
    gen = torch.Generator().manual_seed(0)
    v = SteeringVector.from_tensors(
        model, {"blocks.1.hook_resid_post": torch.randn(64, generator=gen)}, method="mean_diff"
    )
    return calibrate_strength(
        model, v, load_starter(), strengths=(4.0, 1.0), n_per_intent=3, kl_tokens=2, progress=False
    )


def test_curve_shape_and_kl(curve):
    assert curve.strengths == (0.0, 1.0, 4.0)  # sorted, 0 added
    assert set(curve.margins) == {"vulnerable", "malicious"}
    assert set(curve.margins["vulnerable"]) == {"refusal", "compliance"}
    assert curve.n_prompts == {"vulnerable": 3, "malicious": 3, "kl": 6}
    assert curve.kl[0] == 0.0 and 0 < curve.kl[1] < curve.kl[2]
    assert curve.gain()[0] == 0.0 and curve.method == "mean_diff" and curve.target == "constructive"


def test_strength_zero_is_the_unsteered_model(model, curve):
    """The margins at strength 0 do not depend on the vector."""
    v = SteeringVector.from_tensors(model, {"blocks.0.hook_resid_post": torch.ones(64)})
    other = calibrate_strength(
        model, v, load_starter(), strengths=(), n_per_intent=3, kl_tokens=2, progress=False
    )
    assert other.strengths == (0.0,)
    assert np.allclose(other.margin("vulnerable"), curve.margin("vulnerable")[:1])


def _synthetic() -> StrengthCurve:
    margins = {
        "vulnerable": {"refusal": (1.0, 2.0, 3.0, 2.5), "compliance": (1.0, 2.0, 3.0, 2.5)},
        "malicious": {"refusal": (0.0, 0.5, 1.0, 1.5), "compliance": (0.0, 0.5, 1.0, 1.5)},
    }
    return StrengthCurve(
        (0.0, 1.0, 2.0, 4.0),
        margins,
        (0.0, 0.1, 0.3, 0.9),
        {"vulnerable": 1, "malicious": 1, "kl": 1},
    )


def test_interpolation_and_recommendation_rules():
    c = _synthetic()
    assert np.allclose(c.gain(), [0.0, 0.75, 1.5, 1.5])
    assert c.gain_at_kl(0.2) == pytest.approx(1.125)  # halfway between strengths 1 and 2
    assert c.gain_at_kl(0.2, "malicious") == pytest.approx(0.75)
    assert c.recommend(0.2) == pytest.approx(1.5)
    assert c.recommend(0.0) == 0.0
    assert c.recommend(10.0) == 2.0  # the largest gain; of equal gains, the smaller strength
    assert not c.reaches(1.0) and c.reaches(0.9)
    assert c.gain_at_kl(5.0) == pytest.approx(1.5)  # never reached: the last point


def test_json_round_trip():
    c = _synthetic()
    assert StrengthCurve.from_json(c.to_json()) == c


def test_unknown_target(model):
    v = SteeringVector.from_tensors(model, {"blocks.0.hook_resid_post": torch.ones(64)})
    with pytest.raises(
        ValueError, match=r"unknown target 'kind': use one of constructive, refusal"
    ):
        calibrate_strength(model, v, load_starter(), target="kind")


def test_plot_strength_curve(curve):
    pytest.importorskip("plotly")
    from oyster_steer.plotting import plot_strength_curve

    fig = plot_strength_curve([curve, _synthetic()], kl_budget=0.2)
    assert len(fig.data) == 8 and fig.layout.xaxis2.title.text.startswith("benign next-token KL")


def test_results_section_replaces_only_its_own_section(tmp_path):
    from oyster_steer.reproduce._vector_results import comparison_table, write_section

    path = tmp_path / "RESULTS.md"
    path.write_text(
        "# Results\n\n## Probes\n\nprobe numbers\n\n## Steering vectors\n\nold\n\n## Evaluation\n\neval numbers\n"
    )
    write_section(path, "## Steering vectors\n\nnew table\n")
    text = path.read_text()
    assert "old" not in text and "new table" in text
    assert text.index("## Probes") < text.index("new table") < text.index("## Evaluation")
    assert "probe numbers" in text and "eval numbers" in text
    fresh = write_section(tmp_path / "NEW.md", "## Steering vectors\n\nx\n").read_text()
    assert fresh == "# Results\n\n## Steering vectors\n\nx\n"
    table = comparison_table({"learned": _synthetic()}, [0.2])
    assert "| learned | 0.2 | 1.50 | +1.500 | +1.500 | +0.750 | +0.750 | +1.125 |" in table


def test_verdict_sentence_follows_the_curves():
    from dataclasses import replace

    from oyster_steer.reproduce._vector_results import verdict

    strong = _synthetic()
    weak = replace(strong, margins=_scaled_margins(strong, 0.5))
    assert verdict({"learned": strong, "mean_diff": weak}, [0.1, 0.2]).startswith(
        "**Verdict:** `learned` beats `mean_diff` on mean margin gain at every benign-KL budget"
    )
    assert "does **not** beat" in verdict({"learned": weak, "mean_diff": strong}, [0.1, 0.2])
    assert verdict({"learned": strong}, [0.1]) == ""


def _scaled_margins(c, factor):
    return {
        i: {n: [factor * m for m in ms] for n, ms in neg.items()} for i, neg in c.margins.items()
    }


def test_cached_lower_blocks_give_the_same_curve(model, curve, monkeypatch):
    """Calibration scores from the cached blocks below the vector's site: same curve as full
    forwards at every strength (the tiny test curve is at layer 1 of 3)."""
    import oyster_steer.steering._calibrate as cal

    gen = torch.Generator().manual_seed(0)
    v = SteeringVector.from_tensors(
        model, {"blocks.1.hook_resid_post": torch.randn(64, generator=gen)}, method="mean_diff"
    )
    monkeypatch.setattr(cal, "supports_forward_from", lambda m: False)
    full = calibrate_strength(
        model, v, load_starter(), strengths=(4.0, 1.0), n_per_intent=3, kl_tokens=2, progress=False
    )
    np.testing.assert_allclose(curve.kl, full.kl, rtol=1e-5, atol=1e-6)
    for intent in full.margins:
        for name in full.margins[intent]:
            np.testing.assert_allclose(
                curve.margins[intent][name], full.margins[intent][name], rtol=1e-5, atol=1e-5
            )


def test_a_shared_cache_gives_the_curves_of_separate_calls(model, monkeypatch):
    """Vectors calibrated with one CalibrationCache (two constructive, one refusal) get exactly
    the curves separate calls give, and the vector-independent work runs once."""
    import oyster_steer.steering._calibrate as cal
    from oyster_steer.steering import CalibrationCache

    gen = torch.Generator().manual_seed(1)
    vecs = [
        SteeringVector.from_tensors(
            model, {"blocks.1.hook_resid_post": torch.randn(64, generator=gen)}, meta=meta
        )
        for meta in ({}, {}, {"target": "refusal"})
    ]
    kw = dict(strengths=(4.0, 1.0), n_per_intent=3, kl_tokens=2, progress=False)
    data = load_starter()
    alone = [calibrate_strength(model, v, data, **kw) for v in vecs]
    calls = []
    real = cal.greedy_continuations
    monkeypatch.setattr(
        cal, "greedy_continuations", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    cache = CalibrationCache()
    shared = [calibrate_strength(model, v, data, cache=cache, **kw) for v in vecs]
    assert len(calls) == 1  # the benign continuations: once for all three
    assert shared[2].target == "refusal" and set(shared[2].margins["malicious"]) == {"other"}
    for a, b in zip(alone, shared, strict=True):
        assert a.strengths == b.strengths and a.kl == b.kl and a.margins == b.margins
    assert shared[0].margins != shared[1].margins  # different vectors: the test can fail


@pytest.mark.parametrize("which", ["prompt", "generated"])
def test_prompt_or_generated_calibration_matches_one_forward_per_reply(model, which):
    """calibrate_strength(positions=...) with three replies per prompt (scored as rows of one
    reply pass): its margins and benign KL are those of each (prompt, reply) pair run alone with
    the vector added by hand to exactly the prompt tokens (or the reply tokens)."""
    import oyster_steer.steering._calibrate as cal
    from oyster_steer.backends import Hook, get_backend
    from oyster_steer.core._sites import parse_site
    from oyster_steer.data._contrast import records_of

    site, strength = "blocks.1.hook_resid_post", 4.0
    direction = torch.randn(64, generator=torch.Generator().manual_seed(0))
    v = SteeringVector.from_tensors(model, {site: direction})
    data = load_starter()
    curve = calibrate_strength(
        model, v, data, strengths=(strength,), n_per_intent=3, kl_tokens=2, positions=which,
        progress=False,
    )  # fmt: skip

    def logprobs(prompt, reply, steered):  # (len(reply), V), one forward for the pair alone
        ids = torch.tensor([list(prompt) + list(reply)])
        is_prompt = (torch.arange(ids.shape[1]) < len(prompt)).view(1, -1, 1)
        sel = (is_prompt if which == "prompt" else ~is_prompt).float() * float(steered)
        hook = Hook(parse_site(site), lambda h: h + sel * strength * direction, write=True)
        with get_backend("hf").add_hooks(model, [hook]), torch.no_grad():
            logits = get_backend("hf").forward(model, ids, torch.ones_like(ids))
        return torch.log_softmax(logits[0, len(prompt) - 1 : -1].float(), -1)

    def mean_lp(prompt, reply):
        lp = logprobs(prompt, reply, True)
        return float(lp.gather(-1, torch.tensor(reply)[:, None]).mean())

    records = records_of(data)
    groups = cal._target_groups(model, records, "constructive", 3, 96, 48, 0)
    assert all(len(g.replies) == 3 for gs in groups.values() for g in gs)
    for intent, gs in groups.items():
        scores = torch.tensor([[mean_lp(g.prompt, r) for r in g.replies] for g in gs])
        for k, name in enumerate(("refusal", "compliance"), start=1):
            want = float((scores[:, 0] - scores[:, k]).mean())
            assert curve.margins[intent][name][1] == pytest.approx(want, abs=1e-4)
    kls = []
    for g in cal._benign_groups(model, records, 3, 2, 96, 0):
        p, q = logprobs(g.prompt, g.replies[0], False), logprobs(g.prompt, g.replies[0], True)
        kls.append(float((p.exp() * (p - q)).sum(-1).mean()))
    assert curve.kl[1] == pytest.approx(float(np.mean(kls)), abs=1e-5)
    assert curve.kl[1] > 1e-3  # the steering moves the benign replies: the test can fail
