"""repeng / llama.cpp control vectors (GGUF) and steering-vectors state (safetensors only)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from oyster_steer import ArtifactError, ModelMismatchError, SiteError
from oyster_steer.activations import capture
from oyster_steer.steering import steer
from oyster_steer.testing import tiny_model
from oyster_steer.vectors import (
    SteeringVector,
    load_control_vector,
    load_steering_vectors,
    save_control_vector,
)


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def _vector(model, layers=(1, 2)):
    gen = torch.Generator().manual_seed(0)
    return SteeringVector.from_tensors(
        model, {f"blocks.{L}.hook_resid_post": torch.randn(64, generator=gen) for L in layers}
    )


def _repeng_export_gguf(directions: dict[int, np.ndarray], model_type: str, path) -> None:
    """repeng 0.4's ``ControlVector.export_gguf``, line for line (repeng itself is not installed)."""
    import gguf

    arch = "controlvector"
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string(f"{arch}.model_hint", model_type)
    writer.add_uint32(f"{arch}.layer_count", len(directions))
    for layer in directions:
        writer.add_tensor(f"direction.{layer}", directions[layer])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_round_trip_in_the_control_vector_layout(model, tmp_path):
    import gguf

    v = _vector(model)
    path = save_control_vector(v, tmp_path / "v.gguf")
    reader = gguf.GGUFReader(str(path))
    arch = reader.get_field("general.architecture")
    assert bytes(arch.parts[arch.data[0]]).decode() == "controlvector"
    assert sorted(t.name for t in reader.tensors) == ["direction.1", "direction.2"]
    back = load_control_vector(path, model)
    assert back.allclose(v, rtol=0, atol=0)
    assert back.meta["model_hint"] == v.model_name and back.method == "control_vector"


def test_steer_with_a_file_written_by_repengs_exporter(model, tmp_path):
    gen = torch.Generator().manual_seed(1)
    direction = torch.randn(64, generator=gen)
    _repeng_export_gguf({2: direction.numpy()}, "llama", tmp_path / "repeng.gguf")
    v = load_control_vector(tmp_path / "repeng.gguf", model, strength=1.5)
    assert v.sites[0].name == "blocks.2.hook_resid_post" and v.strength == 1.5
    site = "blocks.2.hook_resid_post"
    before = capture(model, ["Hello there"], site, progress=False)[site]
    with steer(model, v):
        after = capture(model, ["Hello there"], site, progress=False)[site]
    torch.testing.assert_close(after - before, (1.5 * direction)[None], atol=1e-5, rtol=1e-5)


def test_control_vector_refusals(model, tmp_path):
    with pytest.raises(SiteError, match=r"llama.cpp numbers control-vector layers from 1"):
        save_control_vector(_vector(model, (0,)), tmp_path / "a.gguf")
    mid = SteeringVector.from_tensors(model, {"blocks.1.hook_resid_pre": torch.ones(64)})
    with pytest.raises(SiteError, match=r"control vectors hold block outputs only"):
        save_control_vector(mid, tmp_path / "b.gguf")
    _repeng_export_gguf({1: np.ones(32, dtype=np.float32)}, "llama", tmp_path / "narrow.gguf")
    with pytest.raises(ModelMismatchError, match=r"direction.1 has width 32, the model 64"):
        load_control_vector(tmp_path / "narrow.gguf", model)
    _repeng_export_gguf({7: np.ones(64, dtype=np.float32)}, "llama", tmp_path / "deep.gguf")
    with pytest.raises(ModelMismatchError, match=r"direction.7 is beyond this model's 3 layers"):
        load_control_vector(tmp_path / "deep.gguf", model)
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ArtifactError, match=r"is not a GGUF file"):
        load_control_vector(tmp_path / "junk.gguf", model)


def test_steering_vectors_state_from_safetensors(model, tmp_path):
    gen = torch.Generator().manual_seed(2)
    state = {"1": torch.randn(64, generator=gen), "2": torch.randn(64, generator=gen)}
    save_file(state, str(tmp_path / "sv.safetensors"))
    v = load_steering_vectors(tmp_path / "sv.safetensors", model)
    assert [s.name for s in v.sites] == ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]
    torch.testing.assert_close(v.directions["blocks.2.hook_resid_post"], state["2"])
    save_file({"layer_activations.1": state["1"]}, str(tmp_path / "prefixed.safetensors"))
    assert load_steering_vectors(tmp_path / "prefixed.safetensors", model).sites[0].layer == 1


def test_pickles_are_refused_unopened(model, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a pickle was opened")

    state = {1: torch.ones(64)}
    torch.save(state, tmp_path / "sv.pt")
    torch.save(state, tmp_path / "disguised.safetensors")  # a zip under a safetensors name
    (tmp_path / "raw.safetensors").write_bytes(pickle.dumps(state))
    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    for name in ("sv.pt", "disguised.safetensors", "raw.safetensors"):
        with pytest.raises(ArtifactError, match=r"is a pickle .*runs arbitrary code.*safetensors"):
            load_steering_vectors(tmp_path / name, model)
    (tmp_path / "text.safetensors").write_text(json.dumps({"1": [0.0] * 64}))
    with pytest.raises(ArtifactError, match=r"is not a safetensors file"):
        load_steering_vectors(tmp_path / "text.safetensors", model)
