"""Probe figures hold real traces with one point per layer, sample, token or class."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("plotly")

from oyster_steer.activations._capture import Activations  # noqa: E402
from oyster_steer.plotting import plot_boundary, plot_confusion, plot_layer_sweep, plot_token_trace  # noqa: E402
from oyster_steer.probes._probe import LinearProbe  # noqa: E402
from oyster_steer.probes._sweep import Task, sweep_activations  # noqa: E402
from oyster_steer.probes._trace import TokenTrace  # noqa: E402
from oyster_steer.probes._train import train_probe  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: single-threaded fits


def acts(n: int, seed: int) -> tuple[Activations, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    sites = {
        f"blocks.{i}.hook_resid_post": torch.randn(n, 8, generator=g)
        + (i * y)[:, None] * torch.eye(8)[0]
        for i in range(4)
    }
    return Activations(
        sites, ["p"] * n, torch.zeros(0, dtype=torch.long), torch.zeros(n + 1, dtype=torch.long)
    ), y


def test_layer_sweep_one_point_per_layer_per_split():
    (a, y), (b, yb) = acts(90, 0), acts(60, 1)
    sweep = sweep_activations(
        {"train": a, "validation": b},
        {"train": y, "validation": yb},
        Task("t", ("x", "y", "z"), lambda r: 0),
        progress=False,
    )
    fig = plot_layer_sweep(sweep, metrics=["auroc", "macro_f1"])
    assert len(fig.data) == 4  # 2 metrics x 2 splits
    assert all(list(t.x) == [0, 1, 2, 3] for t in fig.data)
    assert fig.data[0].y[3] > fig.data[0].y[0]  # the signal grows with the layer


def test_boundary_one_trace_per_class_with_every_point():
    a, y = acts(90, 2)
    site = "blocks.3.hook_resid_post"
    probe = train_probe(a[site], y, site=site, label_names=("x", "y", "z"))
    fig = plot_boundary(probe, a, y)
    assert [t.name for t in fig.data] == ["x", "y", "z"]
    assert sum(len(t.x) for t in fig.data) == 90
    means = [sum(t.x) / len(t.x) for t in fig.data]
    assert means[2] > means[0]  # the last class lies furthest along its own direction


def test_token_trace_heatmap_rows_are_classes_and_columns_tokens():
    probs = {"risk": torch.rand(5, 2), "intent": torch.rand(5, 4)}
    trace = TokenTrace(
        ["a", "b", "c", " d", " e"],
        torch.arange(5),
        3,
        probs,
        {"risk": ("n", "m"), "intent": tuple("wxyz")},
    )
    fig = plot_token_trace(trace)
    z = fig.data[0].z
    assert len(z) == 6 and all(len(row) == 5 for row in z)
    assert len(plot_token_trace(trace, probe="risk").data[0].z) == 2


def test_confusion_counts_and_row_normalisation():
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    fig = plot_confusion(pred, y, ["a", "b", "c"])
    z = fig.data[0].z
    assert (
        len(z) == 3
        and z[1][1] == pytest.approx(2 / 3)
        and list(fig.data[0].text[0]) == ["1", "1", "0"]
    )
    assert (
        plot_confusion(torch.nn.functional.one_hot(pred, 3).float(), y, "abc", normalize=False)
        .data[0]
        .z[1][1]
        == 2
    )


def test_probe_class_is_used_for_direction():
    w = torch.zeros(2, 8)
    w[1, 0] = 1.0
    probe = LinearProbe(
        "blocks.0.hook_resid_post", ("n", "p"), w, torch.zeros(2), torch.zeros(8), torch.ones(8)
    )
    x = torch.randn(20, 8)
    fig = plot_boundary(probe, x, torch.zeros(20, dtype=torch.long))
    assert torch.allclose(torch.tensor(fig.data[0].x), x[:, 0], atol=1e-5)
