"""train_vector: the math on planted directions, the pipeline on a tiny model, learning and resuming."""

from __future__ import annotations

import os

import pytest
import torch

from oyster_steer import ArtifactError
from oyster_steer.data import load_starter
from oyster_steer.steering._calibrate import calibrate_strength
from oyster_steer.testing import tiny_model
from oyster_steer.vectors._learn import LearnConfig
from oyster_steer.vectors._train import (
    default_site,
    mean_difference,
    pca_direction,
    reply_activations,
    train_vector,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAST = LearnConfig(
    steps=8, batch_size=2, kl_batch_size=2, max_reply_tokens=8, kl_tokens=2, eval_every=4, lr=0.2
)


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def data():
    return load_starter()


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_mean_difference_recovers_a_planted_direction():
    gen = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(64, generator=gen), dim=0)
    base = torch.randn(400, 64, generator=gen)
    pos, neg = base[:200] + 3 * u, base[200:]
    direction = mean_difference(pos, neg)
    assert _cos(direction, u) > 0.95
    assert abs(float(direction @ u) - 3) < 0.5


def test_pca_finds_the_varying_direction_with_the_mean_differences_sign():
    gen = torch.Generator().manual_seed(1)
    u = torch.nn.functional.normalize(torch.randn(64, generator=gen), dim=0)
    spread = 4 * torch.randn(300, 1, generator=gen)
    diffs = 0.5 * u + spread * u + 0.1 * torch.randn(300, 64, generator=gen)  # (N, d)
    for sign in (1.0, -1.0):
        reference = mean_difference(sign * diffs, torch.zeros(1, 64))
        pc = pca_direction(sign * diffs, reference)
        assert _cos(pc, sign * u) > 0.99  # sign follows the mean difference, not the SVD
        assert torch.isclose(pc.norm(), reference.norm())


def test_pca_keeps_the_shift_the_pairs_share():
    """Uncentred: differences that agree on a direction give that direction (centring would
    subtract it and return noise nearly orthogonal to the mean difference)."""
    gen = torch.Generator().manual_seed(2)
    u = torch.nn.functional.normalize(torch.randn(64, generator=gen), dim=0)
    diffs = 3 * u + 0.5 * torch.randn(200, 64, generator=gen)
    reference = mean_difference(diffs, torch.zeros(1, 64))
    pc = pca_direction(diffs, reference)
    assert _cos(pc, u) > 0.95
    centred = torch.linalg.svd(diffs - diffs.mean(0), full_matrices=False)[2][0]
    assert abs(_cos(centred, u)) < 0.5  # what the centred component would have given


def test_reply_activations_see_in_place_weight_edits():
    """No cache keyed on the module: the same call after an in-place edit reads the new weights."""
    from oyster_steer.core._sites import parse_site
    from oyster_steer.testing import tiny_model

    model, site = tiny_model("llama", seed=7), parse_site("blocks.1.hook_resid_post")
    args = (model, ["How do I bake bread?"], ["Happy to help."], [site])
    before = reply_activations(*args, progress=False)[site.name]
    with torch.no_grad():
        model.hf.get_input_embeddings().weight.mul_(2.0)
    after = reply_activations(*args, progress=False)[site.name]
    assert not torch.allclose(before, after)


def test_reply_activations_average_only_the_reply_tokens(model):
    from oyster_steer.activations._capture import capture
    from oyster_steer.core._sites import parse_site

    site = parse_site("blocks.1.hook_resid_post")
    prompt, reply = "How do I bake bread?", "Sure, happy to help! Here you go."
    got = reply_activations(model, [prompt], [reply], [site], progress=False)[site.name][0]
    full = capture(
        model,
        [model.format_chat(prompt) + reply],
        [site],
        pool="all",
        chat=False,
        progress=False,
    )
    n_reply = len(model.tokenizer(reply, add_special_tokens=False)["input_ids"])
    assert torch.allclose(got, full[site.name][-n_reply:].mean(0), atol=1e-5)


@pytest.mark.parametrize("method", ["mean_diff", "pca"])
def test_activation_methods_on_the_tiny_model(model, data, method):
    v = train_vector(model, data, method=method, n_per_intent=6, progress=False)
    assert [s.name for s in v.sites] == [default_site(model)] == ["blocks.1.hook_resid_post"]
    assert v.method == method and v.strength == 1.0 and v.meta["target"] == "constructive"
    assert v.meta["data"] == "12 prompts (malicious 6, vulnerable 6) from starter"
    refusal = train_vector(
        model, data, method=method, target="refusal", n_per_intent=3, progress=False
    )
    assert refusal.meta["intents"] == "vulnerable,malicious,benign,borderline"


def test_learned_lowers_its_loss_and_raises_the_margin(model, data):
    v = train_vector(model, data, method="learned", n_per_intent=8, config=FAST, progress=False)
    assert (
        v.method == "learned" and float(v.meta["best_val_loss"]) < 0.6931
    )  # log 2 = the loss of v = 0
    curve = calibrate_strength(
        model, v, data, strengths=(1.0,), n_per_intent=4, kl_tokens=2, progress=False
    )
    assert curve.gain()[1] > 0 and curve.kl[1] > 0


def test_resume_continues_the_same_run(model, data, tmp_path):
    ckpt = tmp_path / "run.safetensors"
    straight = train_vector(
        model, data, method="learned", n_per_intent=8, config=FAST, progress=False
    )
    cut = LearnConfig(**{**FAST.__dict__, "max_minutes": 1e-9})  # stops after its first step
    first = train_vector(
        model, data, method="learned", n_per_intent=8, config=cut, checkpoint=ckpt, progress=False
    )
    assert first.meta["steps"] == "1" and first.meta["stopped"] == "time" and ckpt.exists()
    resumed = train_vector(
        model,
        data,
        method="learned",
        n_per_intent=8,
        config=FAST,
        checkpoint=ckpt,
        resume=True,
        progress=False,
    )
    assert resumed.meta["steps"] == "8"
    assert resumed.allclose(straight, atol=1e-5)
    other = LearnConfig(**{**FAST.__dict__, "lr": 0.5})
    with pytest.raises(
        ArtifactError,
        match=r"was written by a run with other settings, sites, data or model: pass resume=False",
    ):
        train_vector(
            model,
            data,
            method="learned",
            n_per_intent=8,
            config=other,
            checkpoint=ckpt,
            resume=True,
            progress=False,
        )


def test_errors(model, data):
    with pytest.raises(
        ValueError,
        match=r"unknown method 'cav': use one of mean_diff, pca, logistic, learned or a callable",
    ):
        train_vector(model, data, method="cav")
    with pytest.raises(
        ValueError, match=r"unknown target 'polite': use one of constructive, refusal"
    ):
        train_vector(model, data, target="polite")
    from oyster_steer import EmptyInputError

    with pytest.raises(EmptyInputError, match=r"no prompts for target 'constructive'"):
        train_vector(model, data.filter(intent="benign"), progress=False)


def test_learned_from_cached_lower_blocks_equals_full_forward_training(model, data, monkeypatch):
    """Training that runs only the blocks above the first steered one (the lower blocks cached
    once) learns the same vector, with the same validation history, as full forwards."""
    import oyster_steer.activations._scoring as scoring
    import oyster_steer.vectors._learn as learn

    sites = "blocks.2.hook_resid_pre"
    fast = train_vector(
        model, data, method="learned", sites=sites, n_per_intent=8, config=FAST, progress=False
    )
    for module in (learn, scoring):  # every caller of the cached path falls back to full forwards
        monkeypatch.setattr(module, "supports_forward_from", lambda m: False)
    full = train_vector(
        model, data, method="learned", sites=sites, n_per_intent=8, config=FAST, progress=False
    )
    a, b = fast.directions[sites], full.directions[sites]
    assert float(b.norm()) > 0  # it learned something
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert fast.meta["best_step"] == full.meta["best_step"]
    assert abs(float(fast.meta["best_val_loss"]) - float(full.meta["best_val_loss"])) < 1e-5


def test_shared_activations_capture_the_same_contrasts_once(model, data, monkeypatch):
    """``train-vector --shipped`` trains mean_diff and pca on the same contrasts: inside
    ``shared_activations`` they are captured once, and both vectors (and their metadata) equal
    separately trained ones exactly; other contrasts (another target) are captured anew."""
    from oyster_steer.vectors import _train

    kw = dict(n_per_intent=6, progress=False)
    alone = {m: train_vector(model, data, method=m, **kw) for m in ("mean_diff", "pca")}
    calls = []
    real = _train.text_activations
    monkeypatch.setattr(
        _train, "text_activations", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k)
    )
    with _train.shared_activations():
        shared = {m: train_vector(model, data, method=m, **kw) for m in ("mean_diff", "pca")}
        refusal = train_vector(model, data, method="mean_diff", target="refusal", **kw)
    assert len(calls) == 2  # the constructive contrasts once, the refusal ones once
    for m, v in shared.items():
        assert v.meta == alone[m].meta
        for site in v.directions:
            assert torch.equal(v.directions[site], alone[m].directions[site]), m
    assert refusal.meta["target"] == "refusal"
    train_vector(model, data, method="pca", **kw)  # outside the block: captured again
    assert len(calls) == 3
