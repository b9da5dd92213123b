"""Figures for control plans: the payoff matrix of a policy and the per-row decisions it made."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["plot_decisions", "plot_payoffs"]


def plot_payoffs(policy: Any) -> go.Figure:
    """Heatmap of ``U[strategy, intent]`` with each intent's best strategy outlined.

    Args:
        policy: a :class:`~oyster_steer.Policy`.

    Example:
        >>> plot_payoffs(oyster_steer.Policy()).show()  # doctest: +SKIP
    """
    u = policy.payoff.float()  # (S, C)
    fig = go.Figure(
        go.Heatmap(
            z=u.tolist(),
            x=list(policy.intents),
            y=list(policy.strategies),
            colorscale="RdBu",
            zmid=0.0,
            text=[[f"{v:+.2f}" for v in row] for row in u.tolist()],
            texttemplate="%{text}",
            colorbar={"title": "utility"},
        )
    )
    for c, s in enumerate(u.argmax(0).tolist()):  # best reply to each user type
        fig.add_shape(
            type="rect",
            x0=c - 0.5,
            x1=c + 0.5,
            y0=s - 0.5,
            y1=s + 0.5,
            line={"color": "black", "width": 3},
        )
    fig.update_layout(
        title=f"payoffs U[strategy, intent] ({policy.mode} gates)",
        xaxis_title="user intent",
        yaxis_title="response strategy",
        yaxis={"autorange": "reversed"},
        template="plotly_white",
    )
    return fig


def plot_decisions(decisions: Any, labels: Sequence[str] | None = None) -> go.Figure:
    """Per row: the intent posterior (stacked bars) and the gates on each strategy.

    Args:
        decisions: ``handle.decisions()`` of a patched :class:`~oyster_steer.ControlPlan`.
        labels: a name per row (e.g. shortened prompts); default "row i".

    Example:
        >>> plot_decisions(handle.decisions(), labels=["benign", "vulnerable"]).show()  # doctest: +SKIP
    """
    n = len(decisions)
    rows = list(labels) if labels is not None else [f"row {i}" for i in range(n)]
    if len(rows) != n:
        raise ValueError(f"labels has {len(rows)} names for {n} rows: give one label per row")
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        subplot_titles=("intent posterior", "strategy gates"),
        horizontal_spacing=0.06,
    )
    for c, intent in enumerate(decisions.intents):
        fig.add_trace(
            go.Bar(
                y=rows,
                x=decisions.posterior[:, c].tolist(),
                name=intent,
                orientation="h",
                legendgroup="intent",
            ),
            1,
            1,
        )
    for s, strategy in enumerate(decisions.strategies):
        eu = decisions.expected_utility[:, s].tolist()
        fig.add_trace(
            go.Bar(
                y=rows,
                x=decisions.gates[:, s].tolist(),
                name=strategy,
                orientation="h",
                legendgroup="strategy",
                customdata=eu,
                hovertemplate=f"{strategy}: gate %{{x:.2f}}, expected utility %{{customdata:+.2f}}<extra></extra>",
            ),
            1,
            2,
        )
    fig.update_layout(
        barmode="stack",
        title="control decisions per row",
        template="plotly_white",
        yaxis={"autorange": "reversed"},
    )
    fig.update_xaxes(range=[0, 1])
    return fig
