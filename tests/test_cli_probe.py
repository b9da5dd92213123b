"""``oyster-steer train-probe`` end to end on the tiny model and a slice of the starter set."""

from __future__ import annotations

import pytest
import torch

from oyster_steer.cli import main


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_train_probe_writes_probes_and_only_its_report_section(tmp_path, monkeypatch, tiny):
    from oyster_steer._probe import load_probe
    from oyster_steer.cli import _probe
    from oyster_steer.data import load_starter

    model = tiny
    monkeypatch.setattr(_probe, "model_from_args", lambda args: model)
    monkeypatch.setattr(_probe, "data_from_args", lambda args: load_starter().sample(10, seed=0))
    report = tmp_path / "RESULTS.md"
    report.write_text("# Results\n\n## Steering vectors\n\nkeep me\n\n## Probes\n\nold text\n")
    argv = [
        "train-probe",
        "--out",
        str(tmp_path / "probes"),
        "--cache",
        str(tmp_path / "cache"),
        "--report",
        str(report),
        "--no-baseline",
        "--quiet",
    ]
    assert main(argv) == 0
    risk, intent = (
        load_probe(tmp_path / "probes" / f"{t}.safetensors", model) for t in ("risk", "intent")
    )
    assert risk.labels == ("not_malicious", "malicious") and risk.threshold is not None
    assert intent.n_classes == 4 and intent.meta["chosen_by"] == "validation macro_f1"
    text = report.read_text()
    assert "keep me" in text and "old text" not in text and text.count("## Probes") == 1
    assert "AUROC malicious vs benign" in text and "recall borderline" in text and "| 2 |" in text
