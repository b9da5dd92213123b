"""Model identity: artifacts and caches follow the weights, not a sample of the embedding.

The old fingerprint (config + the embedding's top-left 8x8 block) let a fine-tune that left that
block alone accept the base model's artifacts and be served the base model's cached
activations, and an export kept its source's identity, so re-applying a baked vector doubled it.
Every test here failed before the fix.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from oyster_steer import ArtifactError, ModelMismatchError
from oyster_steer.activations._cache import cached_capture
from oyster_steer.activations._capture import capture
from oyster_steer.models._model import from_hf, load_model, weights_digest
from oyster_steer.probes._probe import LinearProbe, load_probe, save_probe
from oyster_steer.steering._steer import patch
from oyster_steer.testing import default_tokenizer, tiny_hf_model
from oyster_steer.vectors._vector import SteeringVector, load_vector, save_vector

SITE = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def base():
    return from_hf(tiny_hf_model("llama", seed=11), default_tokenizer(), name="base")


@pytest.fixture(scope="module")
def finetune(base):
    """The base model with one MLP nudged: the embedding (and its 8x8 corner) is untouched."""
    hf = copy.deepcopy(base.hf)
    with torch.no_grad():
        hf.model.layers[1].mlp.down_proj.weight.mul_(1.05)
    return from_hf(hf, default_tokenizer(), name="finetune")


def _vector(model):
    g = torch.Generator().manual_seed(2)
    return SteeringVector.from_tensors(model, {SITE: torch.randn(model.d_model, generator=g)})


def test_a_finetune_has_another_identity(base, finetune):
    assert weights_digest(base.hf) != weights_digest(finetune.hf)
    assert base.weights_id != finetune.weights_id


def test_weights_digest_ignores_dtype(base):
    assert weights_digest(copy.deepcopy(base.hf).to(torch.bfloat16)) == base.weights_id


def test_base_artifacts_are_refused_on_a_finetune(base, finetune, tmp_path):
    path = save_vector(_vector(base), tmp_path / "v.safetensors")
    with pytest.raises(ModelMismatchError, match="model_weights"):
        load_vector(path, finetune)
    with pytest.raises(ModelMismatchError, match="model_weights"):
        patch(finetune, _vector(base))
    d = base.d_model
    probe = LinearProbe(
        SITE, ("a", "b"), torch.randn(2, d), torch.zeros(2), torch.zeros(d), torch.ones(d)
    )
    ppath = save_probe(probe, tmp_path / "p.safetensors", base)
    with pytest.raises(ModelMismatchError, match="model_weights"):
        load_probe(ppath, finetune)


def test_deliberate_transfer_is_explicit_and_says_what_it_skips(base, finetune, tmp_path):
    path = save_vector(_vector(base), tmp_path / "v.safetensors")
    with pytest.warns(UserWarning, match="skips the model_fingerprint and model_weights checks"):
        moved = load_vector(path, finetune, transfer=True)
    assert moved.meta["transferred_from"] == base.weights_id
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        patch(finetune, moved).remove()  # retargeted: no further complaint


def test_save_probe_always_records_the_model(base, tmp_path):
    d = base.d_model
    probe = LinearProbe(
        SITE, ("a", "b"), torch.randn(2, d), torch.zeros(2), torch.zeros(d), torch.ones(d)
    )
    with pytest.raises(ArtifactError, match="model"):
        save_probe(probe, tmp_path / "p.safetensors")
    path = save_probe(probe, tmp_path / "p.safetensors", base)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["model_fingerprint"] == base.fingerprint
    assert meta["model_weights"] == base.weights_id


def test_capture_cache_does_not_serve_a_finetune_the_base_activations(base, finetune, tmp_path):
    texts = ["Hello there", "How are you?"]
    cached_capture(base, texts, SITE, root=tmp_path, progress=False)
    got = cached_capture(finetune, texts, SITE, root=tmp_path, progress=False)[SITE]
    want = capture(finetune, texts, SITE, progress=False)[SITE]
    torch.testing.assert_close(got, want)


def test_weights_digest_is_cached_by_file_identity(tmp_path, monkeypatch):
    from oyster_steer.models import _model as _models

    path = tmp_path / "m"
    tiny_hf_model("llama", seed=4).save_pretrained(path)
    default_tokenizer().save_pretrained(path)
    monkeypatch.setenv("OYSTER_STEER_CACHE", str(tmp_path / "cache"))
    calls = []
    real = _models.weights_digest
    monkeypatch.setattr(_models, "weights_digest", lambda hf: calls.append(1) or real(hf))
    first = load_model(str(path), device="cpu").weights_id
    again = load_model(str(path), device="cpu").weights_id
    assert first == again and len(calls) == 1  # the second load read the cache
    hf = tiny_hf_model("llama", seed=5)
    hf.save_pretrained(path)  # same path, new file: a new identity
    assert load_model(str(path), device="cpu").weights_id == weights_digest(hf)
    assert len(calls) == 2


def test_an_export_refuses_its_baked_vector_again(base, tmp_path):
    from oyster_steer.export._export import export_patched

    vector = _vector(base).with_strength(2.0)
    export_patched(base, vector, tmp_path / "out")
    exported = load_model(str(tmp_path / "out"), device="cpu")
    assert exported.weights_id != base.weights_id
    with pytest.raises(ModelMismatchError, match="already baked"):
        patch(exported, vector)
    legacy = SteeringVector(  # an artifact without model_weights (written before this check)
        dict(vector.directions), base.name, exported.fingerprint, base.d_model, base.n_layers
    )
    with pytest.raises(ModelMismatchError, match="already baked"):
        patch(exported, legacy)
