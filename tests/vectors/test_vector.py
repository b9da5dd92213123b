"""SteeringVector: arithmetic laws, validation, save/load, and the errors users will see."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oyster_steer import ArtifactError, ModelMismatchError, SiteError, WidthMismatchError
from oyster_steer.testing import tiny_model
from oyster_steer.vectors._vector import SteeringVector, load_vector, save_vector

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SITES = ("blocks.0.hook_resid_post", "blocks.2.hook_resid_mid")


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def other_model():
    return tiny_model("llama", seed=1)


def _vec(model, seed: int, sites=SITES, **kw) -> SteeringVector:
    gen = torch.Generator().manual_seed(seed)
    return SteeringVector.from_tensors(
        model, {s: torch.randn(model.d_model, generator=gen) for s in sites}, **kw
    )


seeds = st.integers(0, 2**16)
scalars = st.floats(-8, 8, allow_nan=False).filter(lambda x: abs(x) > 1e-3)


@settings(max_examples=25, deadline=None)
@given(a=seeds, b=seeds, c=seeds)
def test_addition_is_commutative_and_associative(model, a, b, c):
    u, v, w = _vec(model, a), _vec(model, b), _vec(model, c)
    assert (u + v).allclose(v + u)
    assert ((u + v) + w).allclose(u + (v + w), atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(a=seeds, b=seeds, s=scalars, t=scalars)
def test_scalar_laws(model, a, b, s, t):
    u, v = _vec(model, a), _vec(model, b)
    assert (s * (u + v)).allclose(s * u + s * v, atol=1e-4)
    assert ((s + t) * u).allclose(s * u + t * u, atol=1e-4)
    assert (u * s).allclose(s * u)
    assert u.scale(s).allclose(s * u)
    assert (u / s).allclose((1 / s) * u, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(a=seeds, b=seeds)
def test_negation_and_subtraction(model, a, b):
    u, v = _vec(model, a), _vec(model, b)
    assert u.__neg__().__neg__().allclose(u)
    assert (u - v).allclose(u + (-v))
    assert ((u - v) + v).allclose(u, atol=1e-5)
    assert all(n < 1e-6 for n in (u - u).norms().values())


@settings(max_examples=25, deadline=None)
@given(a=seeds, s=st.floats(0.01, 50))
def test_normalize_gives_unit_norms_and_is_scale_invariant(model, a, s):
    u = _vec(model, a)
    assert all(abs(n - 1) < 1e-5 for n in u.normalize().norms().values())
    assert (s * u).normalize().allclose(u.normalize(), atol=1e-5)


def test_zero_direction_normalizes_to_zero(model):
    z = SteeringVector.from_tensors(model, {SITES[0]: torch.zeros(model.d_model)})
    assert z.normalize().norms() == {SITES[0]: 0.0}


def test_operations_return_new_objects_and_keep_identity(model):
    u = _vec(model, 0, method="mean_diff", strength=3.0, meta={"target": "constructive"})
    before = {k: t.clone() for k, t in u.directions.items()}
    w = 2 * u
    assert (
        w is not u
        and w.method == "mean_diff"
        and w.strength == 3.0
        and w.meta["target"] == "constructive"
    )
    assert all(torch.equal(u.directions[k], before[k]) for k in before)  # u unchanged
    assert (u + _vec(model, 1, method="pca")).method == "combined"
    assert u.with_strength(5.0, kl_budget="0.1").strength == 5.0


def test_sites_are_canonical_and_in_forward_order(model):
    v = SteeringVector.from_tensors(
        model,
        {"blocks.-1.hook_resid_post": torch.ones(64), "blocks.0.hook_resid_pre": torch.ones(64)},
    )
    assert list(v.directions) == ["blocks.0.hook_resid_pre", "blocks.2.hook_resid_post"]
    assert [s.layer for s in v.sites] == [0, 2]


def test_from_tensors_rejects_bad_width_layer_and_duplicates(model):
    with pytest.raises(
        WidthMismatchError, match=r"has shape \(32,\), but the model's residual width is 64"
    ):
        SteeringVector.from_tensors(model, {SITES[0]: torch.ones(32)})
    with pytest.raises(SiteError, match=r"layer 7 .* out of range for a model with 3 layers"):
        SteeringVector.from_tensors(model, {"blocks.7.hook_resid_post": torch.ones(64)})
    with pytest.raises(SiteError, match=r"is given twice"):
        SteeringVector.from_tensors(
            model,
            {
                "blocks.2.hook_resid_post": torch.ones(64),
                "blocks.-1.hook_resid_post": torch.ones(64),
            },
        )
    with pytest.raises(TypeError, match=r"floating-point"):
        SteeringVector.from_tensors(model, {SITES[0]: torch.ones(64, dtype=torch.long)})


def test_direct_construction_requires_canonical_sites(model):
    with pytest.raises(SiteError, match=r"not canonical \(expected 'blocks.2.hook_resid_post'\)"):
        replace(
            _vec(model, 0, sites=SITES[:1]),
            directions={"blocks.-1.hook_resid_post": torch.ones(64)},
        )


def test_mismatches_raise_with_fix_it_messages(model, other_model):
    u = _vec(model, 0)
    with pytest.raises(
        ModelMismatchError,
        match=r"cannot add a vector for model 'tiny-llama-0' .* combine vectors made for the same model",
    ):
        u + _vec(other_model, 0)
    with pytest.raises(
        SiteError,
        match=r"cannot subtract vectors with different sites .* train both at the same sites",
    ):
        u - _vec(model, 0, sites=SITES[:1])
    wide = replace(u, directions={s: torch.ones(128) for s in SITES}, d_model=128)
    with pytest.raises(WidthMismatchError, match=r"cannot add vectors of width 64 and 128"):
        u + wide
    with pytest.raises(TypeError):
        u + 1.0
    with pytest.raises(TypeError):
        u * u
    assert not u.allclose(_vec(other_model, 0))


def test_to_changes_dtype(model):
    v = _vec(model, 0).to(dtype=torch.float16)
    assert all(t.dtype == torch.float16 for t in v.directions.values())


def test_save_load_round_trip(model, tmp_path):
    v = _vec(
        model,
        3,
        method="learned",
        strength=2.5,
        meta={"data": "starter: 16 prompts", "target": "constructive"},
    )
    path = save_vector(v, tmp_path / "v.safetensors")
    back = load_vector(path, model)
    assert back.allclose(v, atol=0) and back.method == "learned" and back.strength == 2.5
    assert dict(back.meta) == {"data": "starter: 16 prompts", "target": "constructive"}
    assert (back.model_fingerprint, back.d_model, back.n_layers) == (model.fingerprint, 64, 3)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        header = f.metadata()
    assert header["format"] == "oyster_steer.vector" and header["method"] == "learned"
    assert (
        header["model_fingerprint"] == model.fingerprint
        and '"blocks.0.hook_resid_post"' in header["sites"]
    )


def test_load_refuses_a_vector_for_another_model(model, other_model, tmp_path):
    path = save_vector(_vec(model, 0), tmp_path / "v.safetensors")
    with pytest.raises(
        ModelMismatchError,
        match=r"this steering vector was made for model 'tiny-llama-0' \(model_fingerprint=",
    ):
        load_vector(path, other_model)
    assert load_vector(path).model_name == "tiny-llama-0"  # without a model: no check


def test_load_refuses_other_artifacts(model, tmp_path):
    from oyster_steer.models._artifacts import save_artifact

    path = save_artifact(
        tmp_path / "p.safetensors", {"w": torch.ones(2)}, {}, format="oyster_steer.probe", version=1
    )
    with pytest.raises(
        ArtifactError, match=r"holds a oyster_steer.probe artifact, expected oyster_steer.vector"
    ):
        load_vector(path, model)
    with pytest.raises(ArtifactError, match=r"no artifact at"):
        load_vector(tmp_path / "missing.safetensors")


@pytest.mark.slow
def test_shipped_vectors_belong_to_the_default_model(smollm):
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "vectors" / "smollm2-135m-instruct"
    for name in (
        "constructive",
        "refusal",
        "constructive-mean_diff",
        "constructive-pca",
        "constructive-learned",
    ):
        v = load_vector(folder / f"{name}.safetensors", smollm)
        assert [s.name for s in v.sites] == ["blocks.12.hook_resid_post"]
        assert (
            v.strength > 0
            and v.meta["calibration"] == "validation split"
            and "train split" in v.meta["data"]
        )
        assert v.meta["target"] == ("refusal" if name == "refusal" else "constructive")
