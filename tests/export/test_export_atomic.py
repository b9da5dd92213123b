"""Export is atomic: a kill or a failed self-check never leaves a loadable checkpoint behind.

``export_patched`` writes into a hidden temporary sibling, verifies it, writes the manifest and
only then renames it to ``out_dir``. Each test failed before the fix (the directory was written
in place, and a failed check left it loadable).
"""

from __future__ import annotations

import math

import pytest
import torch

from oyster_steer.export._export import ExportError, export_patched

SITE = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def model(tiny_models):
    return tiny_models("llama", "hf")


@pytest.fixture
def vector(model):
    g = torch.Generator().manual_seed(0)
    return {SITE: torch.randn(model.d_model, generator=g)}


def test_a_failed_self_check_leaves_nothing_loadable(model, vector, tmp_path, monkeypatch):
    from oyster_steer.export import _export

    def broken(model, out_dir, additive, basis):
        assert (out_dir / "config.json").is_file()  # it verifies the written files
        raise ExportError("simulated self-check failure")

    monkeypatch.setattr(_export, "_verify", broken)
    with pytest.raises(ExportError, match="simulated"):
        export_patched(model, vector, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary left either


def test_a_kill_mid_export_leaves_no_checkpoint_at_out_dir(model, vector, tmp_path, monkeypatch):
    from oyster_steer.export import _export

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what a kill between writing and verifying looks like

    monkeypatch.setattr(_export, "_verify", killed)
    with pytest.raises(KeyboardInterrupt):
        export_patched(model, vector, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_successful_export_lands_complete_with_its_manifest(model, vector, tmp_path):
    (tmp_path / "out").mkdir()  # an existing empty directory is fine
    manifest = export_patched(model, vector, tmp_path / "out")
    assert manifest.out_dir == str(tmp_path / "out")
    assert (tmp_path / "out" / "oyster_steer_manifest.json").is_file()
    assert manifest.verification is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_export_refuses_nonfinite_vectors_and_strength(model, vector, tmp_path, value):
    poisoned = {SITE: vector[SITE].clone()}
    poisoned[SITE][0] = value
    with pytest.raises(ValueError, match="finite"):
        export_patched(model, poisoned, tmp_path / "a", verify=False)
    with pytest.raises(ValueError, match="finite"):
        export_patched(model, vector, tmp_path / "b", strength=value, verify=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
