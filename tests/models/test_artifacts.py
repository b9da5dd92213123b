"""Safetensors artifacts: round trip, validated header, refused formats, versions and models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from oyster_steer import ArtifactError, ModelMismatchError
from oyster_steer.models._artifacts import (
    check_model,
    load_artifact,
    meta_json,
    model_meta,
    save_artifact,
)

FORMAT = "oyster_steer.test"


def test_round_trip(tmp_path, tiny):
    tensors = {"w": torch.randn(3, 64), "ids": torch.arange(5), "flag": torch.tensor([True, False])}
    meta = {
        **model_meta(tiny),
        "site": "blocks.1.hook_resid_post",
        "classes": ["a", "b"],
        "scale": 2.5,
    }
    path = save_artifact(
        tmp_path / "deep" / "x.safetensors", tensors, meta, format=FORMAT, version=2
    )
    got, got_meta = load_artifact(path, format=FORMAT, max_version=2)
    assert got.keys() == tensors.keys()
    for k, v in tensors.items():
        assert torch.equal(got[k], v) and got[k].dtype == v.dtype
    assert got_meta["format"] == FORMAT and got_meta["format_version"] == "2"
    assert got_meta["site"] == "blocks.1.hook_resid_post"
    assert meta_json(got_meta, "classes") == ["a", "b"] and meta_json(got_meta, "scale") == 2.5
    assert meta_json(got_meta, "missing", default=7) == 7
    assert got_meta["model_fingerprint"] == tiny.fingerprint and got_meta["d_model"] == "64"
    check_model(got_meta, tiny, what="test artifact")  # same model: no error


def test_saves_non_contiguous_and_autograd_tensors(tmp_path):
    w = torch.randn(4, 6, requires_grad=True)
    path = save_artifact(
        tmp_path / "a.safetensors", {"t": w.T, "g": w * 2}, {}, format=FORMAT, version=1
    )
    got, _ = load_artifact(path, format=FORMAT, max_version=1)
    assert torch.equal(got["t"], w.T.detach()) and not got["g"].requires_grad
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others, like any shipped file


def test_missing_file(tmp_path):
    with pytest.raises(
        ArtifactError, match=r"no artifact at '.*nope\.safetensors': check the path"
    ):
        load_artifact(tmp_path / "nope.safetensors", format=FORMAT, max_version=1)


def test_wrong_format(tmp_path):
    path = save_artifact(
        tmp_path / "p.safetensors", {"w": torch.ones(2)}, {}, format="oyster_steer.probe", version=1
    )
    with pytest.raises(
        ArtifactError,
        match=r"holds a oyster_steer\.probe artifact, expected oyster_steer\.test: load it with the matching loader",
    ):
        load_artifact(path, format=FORMAT, max_version=1)


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2)}, str(path))  # no metadata at all
    with pytest.raises(
        ArtifactError, match=r"holds a non-oyster_steer artifact, expected oyster_steer\.test"
    ):
        load_artifact(path, format=FORMAT, max_version=1)


@pytest.mark.parametrize("version", [3, 0])
def test_unsupported_version(tmp_path, version):
    path = save_artifact(
        tmp_path / "v.safetensors", {"w": torch.ones(2)}, {}, format=FORMAT, version=version
    )
    with pytest.raises(
        ArtifactError,
        match=rf"has oyster_steer\.test format version {version}; this oyster_steer reads up to 2: upgrade oyster_steer",
    ):
        load_artifact(path, format=FORMAT, max_version=2)


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\xff" * 64])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(
        ArtifactError,
        match=r"'.*bad\.safetensors' is not a readable safetensors file \(.*\): re-create it",
    ):
        load_artifact(path, format=FORMAT, max_version=1)


def test_truncated_file(tmp_path):
    path = save_artifact(
        tmp_path / "t.safetensors", {"w": torch.randn(100)}, {}, format=FORMAT, version=1
    )
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ArtifactError, match=r"is not a readable safetensors file"):
        load_artifact(path, format=FORMAT, max_version=1)


def test_never_unpickles(tmp_path):
    """A pickle renamed to .safetensors is refused as unreadable, never executed."""
    path = tmp_path / "evil.safetensors"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(ArtifactError, match="is not a readable safetensors file"):
        load_artifact(path, format=FORMAT, max_version=1)


def test_model_mismatch_names_the_field(tiny_models):
    llama, other_seed, gpt2 = (
        tiny_models("llama"),
        tiny_models("llama", seed=1),
        tiny_models("gpt2"),
    )
    meta = model_meta(llama)
    with pytest.raises(
        ModelMismatchError,
        match=rf"this probe was made for model 'tiny-llama-0' \(model_fingerprint={llama.fingerprint}\), but the "
        rf"loaded model 'tiny-llama-1' has model_fingerprint={other_seed.fingerprint}: load the model it was "
        r"trained on, or retrain it for this one",
    ):
        check_model(meta, other_seed, what="probe")
    wide = {**meta, "d_model": "576"}
    with pytest.raises(
        ModelMismatchError,
        match=r"\(d_model=576\), but the loaded model 'tiny-gpt2-0' has d_model=64",
    ):
        check_model(wide, gpt2, what="vector")
    assert issubclass(ModelMismatchError, ArtifactError)


def test_model_meta_is_all_strings(tiny):
    meta = model_meta(tiny)
    assert meta == {
        "model_name": "tiny-llama-0",
        "model_fingerprint": tiny.fingerprint,
        "model_weights": tiny.weights_id,
        "d_model": "64",
        "n_layers": "3",
    }
    json.dumps(meta)
