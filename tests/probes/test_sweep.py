"""Layer sweeps: the planted site wins; one capture per split; the capture cache; probe splits."""

from __future__ import annotations

import pytest
import torch

from oyster_steer.activations._capture import Activations
from oyster_steer.probes._sweep import (
    TASKS,
    LayerSweep,
    Task,
    sweep_activations,
    sweep_layers,
    task_labels,
)

SITES = [f"blocks.{i}.hook_resid_post" for i in range(3)]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: single-threaded fits


def fake_acts(y: torch.Tensor, seed: int) -> Activations:
    """Three sites of noise; only site 1 carries the label along a planted direction."""
    g = torch.Generator().manual_seed(seed)
    acts = {s: torch.randn(len(y), 16, generator=g) for s in SITES}
    acts[SITES[1]][:, 3] += 3.0 * y
    return Activations(
        acts,
        ["p"] * len(y),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(len(y) + 1, dtype=torch.long),
    )


@pytest.fixture(scope="module")
def planted_sweep() -> LayerSweep:
    ys = {k: torch.arange(n) % 2 for k, n in (("train", 200), ("validation", 100), ("test", 100))}
    acts = {k: fake_acts(y, i) for i, (k, y) in enumerate(ys.items())}
    return sweep_activations(acts, ys, Task("toy", ("no", "yes"), lambda r: 0), progress=False)


def test_best_site_is_the_planted_one(planted_sweep):
    choice = planted_sweep.best("auroc", "validation")
    assert choice.site.layer == 1
    assert choice.metrics["test"]["auroc"] > 0.95
    assert max(planted_sweep.values("auroc", "test")[i] for i in (0, 2)) < 0.75
    assert planted_sweep.best("log_loss").site.layer == 1  # lower is better for losses


def test_table_has_a_row_per_site_and_every_split(planted_sweep):
    rows = planted_sweep.table()
    assert [r["layer"] for r in rows] == [0, 1, 2]
    assert {"train_auroc", "validation_macro_f1", "test_ece"} <= set(rows[0])
    with pytest.raises(KeyError, match="split 'dev' was not scored"):
        planted_sweep.values("auroc", "dev")


def test_task_labels():
    from oyster_steer.data import PromptRecord

    rs = [
        PromptRecord("a", "malicious", "harmful"),
        PromptRecord("b", "vulnerable", "harmful"),
        PromptRecord("c", "borderline", "sensitive"),
    ]
    assert task_labels("risk", rs)[0].tolist() == [1, 0, 0]  # self-harm risk is not malicious
    assert task_labels("intent", rs)[0].tolist() == [3, 2, 1]
    assert task_labels("risk_level", rs)[0].tolist() == [2, 2, 1]
    assert TASKS["risk"].labels == ("not_malicious", "malicious")
    with pytest.raises(ValueError, match="unknown task 'bogus'"):
        task_labels("bogus", rs)


@pytest.fixture(scope="module")
def small_splits():
    from oyster_steer.data import load_starter

    splits = load_starter().splits()
    return {k: v.sample(4, seed=0) for k, v in splits.items()}


def test_sweep_layers_on_tiny_model_captures_each_split_once(
    small_splits, tmp_path, monkeypatch, tiny
):
    from oyster_steer.activations import _cache as _capture_cache

    model = tiny
    calls = []
    real = _capture_cache.capture
    monkeypatch.setattr(
        _capture_cache, "capture", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k)
    )
    s = small_splits
    sweep = sweep_layers(
        model, s["train"], s["validation"], s["test"], task="intent", cache=tmp_path, progress=False
    )
    assert [site.layer for site in sweep.sites] == [0, 1, 2]
    assert sweep.splits == ["train", "validation", "test"] and len(calls) == 3
    again = sweep_layers(
        model, s["train"], s["validation"], None, task="risk", cache=tmp_path, progress=False
    )
    assert len(calls) == 3  # every prompt came from the cache
    assert again.labels == ("not_malicious", "malicious") and again.splits == [
        "train",
        "validation",
    ]


def test_probe_splits_wrap_every_intent_within_its_split():
    from oyster_steer.data import load_starter, split_of
    from oyster_steer.probes._data import is_wrapped, probe_splits

    data = probe_splits(load_starter(), wrap_fraction=0.5, caps={"train": {"starter": 100}})
    assert len([r for r in data.train if not is_wrapped(r)]) == 100
    for name in ("train", "validation", "test"):
        wrapped = [r for r in data.split(name) if is_wrapped(r)]
        assert {r.intent for r in wrapped} == {"benign", "borderline", "vulnerable", "malicious"}
        originals = {r.id: r for r in data.split(name)}
        assert all(
            r.meta["wrapped_from"] in originals
            and split_of(originals[r.meta["wrapped_from"]]) == name
            for r in wrapped
        )
