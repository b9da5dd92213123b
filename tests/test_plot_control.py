"""Control figures hold the policy's payoffs and the decisions' numbers, one trace per class."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("plotly")

from oyster_steer import Policy  # noqa: E402
from oyster_steer.control._runtime import Decisions  # noqa: E402
from oyster_steer.plotting import plot_decisions, plot_payoffs  # noqa: E402


def _decisions() -> Decisions:
    policy = Policy()
    posterior = torch.tensor([[0.9, 0.05, 0.03, 0.02], [0.05, 0.05, 0.85, 0.05]])
    eu, weights, gates = policy.decide(posterior)
    return Decisions(posterior, eu, weights, gates, policy.intents, policy.strategies)


def test_payoff_heatmap_holds_the_matrix_and_outlines_best_replies():
    policy = Policy()
    fig = plot_payoffs(policy)
    heat = fig.data[0]
    assert (
        heat.type == "heatmap"
        and list(heat.x) == list(policy.intents)
        and list(heat.y) == list(policy.strategies)
    )
    assert torch.equal(torch.tensor(heat.z), policy.payoff)
    outlined = sorted((round(s.x0 + 0.5), round(s.y0 + 0.5)) for s in fig.layout.shapes)
    assert outlined == [(0, 0), (1, 0), (2, 1), (3, 2)]  # help, help, guide, redirect


def test_decision_bars_one_trace_per_intent_and_strategy():
    d = _decisions()
    fig = plot_decisions(d, labels=["capital of France", "feeling alone"])
    names = [t.name for t in fig.data]
    assert names == [*d.intents, *d.strategies]
    guide = fig.data[len(d.intents) + 1]
    assert list(guide.x) == [0.0, 1.0] and list(guide.y) == ["capital of France", "feeling alone"]
    assert list(fig.data[2].x) == pytest.approx([0.03, 0.85])  # vulnerable posterior


def test_decision_labels_must_match_rows():
    with pytest.raises(ValueError, match=r"labels has 1 names for 2 rows"):
        plot_decisions(_decisions(), labels=["only one"])
