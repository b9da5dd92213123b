"""Figures for evaluations: rates per intent and condition with bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["plot_eval_rates"]


def plot_eval_rates(
    result: Any, rates: Sequence[str] = ("constructive", "refusal", "compliance")
) -> go.Figure:
    """One panel per rate: bars per intent, one colour per condition, 95% bootstrap error bars.

    Args:
        result: an :class:`~oyster_steer.eval.EvalResult`.
        rates: which rate columns to show.

    Example:
        >>> plot_eval_rates(evaluate(model, prompts, conditions)).show()  # doctest: +SKIP
    """
    table = result.table()
    fig = make_subplots(
        rows=1, cols=len(rates), subplot_titles=[f"{r} rate" for r in rates], shared_yaxes=True
    )
    colors = ("#7f8c9d", "#2b8a3e", "#1c6dd0", "#c2410c", "#8e44ad")
    for j, cond in enumerate(result.conditions):
        cells = [c for c in table if c["condition"] == cond]
        for k, rate in enumerate(rates):
            est = [c[rate] for c in cells]
            fig.add_trace(
                go.Bar(
                    x=[c["intent"] for c in cells],
                    y=[e.value for e in est],
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [e.high - e.value for e in est],
                        "arrayminus": [e.value - e.low for e in est],
                    },
                    name=cond,
                    legendgroup=cond,
                    showlegend=k == 0,
                    marker_color=colors[j % len(colors)],
                    hovertemplate="%{x}: %{y:.0%}<extra>" + cond + "</extra>",
                ),
                row=1,
                col=k + 1,
            )
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_layout(
        barmode="group",
        template="plotly_white",
        title="replies judged per intent (95% bootstrap intervals)",
        legend={"orientation": "h", "y": -0.15},
    )
    return fig
