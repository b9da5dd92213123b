"""``oyster-steer train-probe`` end to end on the tiny model and a slice of the starter set."""

from __future__ import annotations

import pytest
import torch

from oyster_steer.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: single-threaded fits


def test_train_probe_writes_probes_and_only_its_report_section(tmp_path, monkeypatch, tiny):
    from oyster_steer.cli import _probe
    from oyster_steer.data import load_starter
    from oyster_steer.probes._probe import load_probe

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
        "--no-shift-data",
        "--quiet",
    ]
    assert main(argv) == 0
    risk, intent = (
        load_probe(tmp_path / "probes" / f"{t}.safetensors", model) for t in ("risk", "intent")
    )
    assert risk.labels == ("not_malicious", "malicious") and risk.threshold is not None
    assert intent.n_classes == 4 and intent.meta["chosen_by"] == "validation macro_f1, layer <= 12"
    text = report.read_text()
    assert "keep me" in text and "old text" not in text and text.count("## Probes") == 1
    assert "AUROC malicious vs benign" in text and "recall borderline" in text and "| 2 |" in text


SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


def _train_probe(tmp_path, monkeypatch, model, *extra):
    """``train-probe`` on 10 starter prompts of the tiny model at SITES; its data and argv."""
    from oyster_steer.cli import _probe
    from oyster_steer.data import load_starter

    data = load_starter().sample(10, seed=0)
    monkeypatch.setattr(_probe, "model_from_args", lambda args: model)
    monkeypatch.setattr(_probe, "data_from_args", lambda args: data)
    argv = ["train-probe", "--out", str(tmp_path / "probes"), "--cache", str(tmp_path / "cache")]
    argv += ["--sites", *SITES, *extra, "--no-shift-data", "--quiet"]
    assert main(argv) == 0
    return data


def test_train_probe_pool_mean_fits_on_prompt_means_and_records_it(tmp_path, monkeypatch, tiny):
    from oyster_steer.activations._capture import capture
    from oyster_steer.cli import _probe
    from oyster_steer.probes._probe import load_probe

    model, sites = tiny, SITES
    data = _train_probe(tmp_path, monkeypatch, model, "--pool", "mean")
    intent = load_probe(tmp_path / "probes" / "intent.safetensors", model)
    assert intent.pool == "mean" and _probe.capture_sites(intent, model.n_layers) == sites
    texts = [r.text for r in data][:6]
    # the cache serves the probe's own features: the prompt mean, not the last token
    got = _probe.probe_features(model, intent, texts, tmp_path / "cache")
    mean = capture(model, texts, intent.site, pool="mean", progress=False)[intent.site]
    last = capture(model, texts, intent.site, progress=False)[intent.site]
    torch.testing.assert_close(got, mean.float(), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, last.float(), atol=1e-3)


def test_risk_and_intent_metrics_split_plain_and_wrapped():
    from oyster_steer.data import PromptRecord
    from oyster_steer.reproduce._probe_report import intent_metrics, risk_metrics

    def rec(intent: str, wrapped: bool) -> PromptRecord:
        risk = "harmful" if intent == "malicious" else "safe"
        return PromptRecord(
            f"{intent} {wrapped}", intent, risk, meta={"wrapper": "0"} if wrapped else {}
        )

    records = [
        rec("malicious", False),
        rec("benign", False),
        rec("malicious", True),
        rec("benign", True),
        rec("borderline", False),
    ]
    p = torch.tensor([0.9, 0.1, 0.4, 0.6, 0.7])
    m = risk_metrics(p, records, threshold=0.5)
    assert (
        m["auroc_malicious_vs_benign"] == 1.0
        and m["auroc_wrapped_malicious_vs_wrapped_rest"] == 0.0
    )
    assert m["recall_malicious"] == 1.0 and m["recall_wrapped_malicious"] == 0.0
    assert (
        m["flag_wrapped_benign"] == 1.0 and m["flag_borderline"] == 1.0 and m["n_vulnerable"] == 0
    )
    labels = ("benign", "borderline", "vulnerable", "malicious")
    y = torch.tensor([3, 0, 3, 0, 1])
    probs = torch.nn.functional.one_hot(torch.tensor([3, 0, 0, 0, 1]), 4).float()
    im = intent_metrics(probs, y, records, labels)
    assert im["recall_malicious"] == 0.5 and im["macro_f1_plain"] == 1.0


def test_train_probe_pool_last_mean_fits_on_both_side_by_side(tmp_path, monkeypatch, tiny):
    from oyster_steer.activations._capture import capture
    from oyster_steer.cli import _probe
    from oyster_steer.probes._probe import load_probe

    model = tiny
    data = _train_probe(tmp_path, monkeypatch, model, "--pool", "last+mean", "--tasks", "intent")
    assert not (tmp_path / "probes" / "risk.safetensors").exists()  # --tasks intent only
    intent = load_probe(tmp_path / "probes" / "intent.safetensors", model)
    assert intent.pool == "last+mean" and intent.n_features == 2 * model.d_model
    assert intent.d_model == model.d_model
    texts = [r.text for r in data][:6]
    got = _probe.probe_features(model, intent, texts, tmp_path / "cache")
    want = capture(model, texts, intent.site, pool="last+mean", progress=False)[intent.site]
    torch.testing.assert_close(got, want.float(), atol=1e-4, rtol=1e-4)


def test_train_attacks_are_read_as_intent_shares_and_a_bad_one_names_the_fix():
    from oyster_steer.cli._probe import _intent_shares

    assert _intent_shares(None) is None
    assert _intent_shares(["benign=0.5", "vulnerable=1"]) == {"benign": 0.5, "vulnerable": 1.0}
    with pytest.raises(SystemExit, match="INTENT=SHARE"):
        _intent_shares(["benign:0.5"])
