"""Figures for steering vectors: margin gain and benign KL over strength, and the trade-off."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["plot_strength_curve"]


def plot_strength_curve(curve: Any | Sequence[Any], *, kl_budget: float | None = None) -> go.Figure:
    """Left: margin gain per intent vs strength. Right: margin gain vs benign KL (the trade-off).

    Args:
        curve: a :class:`~oyster_steer.steering._calibrate.StrengthCurve`, or several (one per method) to
            compare them at equal benign KL on the right panel.
        kl_budget: draw this KL budget as a vertical line on the right panel.

    Example:
        >>> plot_strength_curve([curve_mean_diff, curve_learned], kl_budget=0.1).show()  # doctest: +SKIP
    """
    curves: list[Any] = [curve] if hasattr(curve, "strengths") else list(curve)
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("margin gain vs strength", "margin gain vs benign KL")
    )
    for c in curves:
        for intent in c.margins:
            label = f"{c.method} · {intent}"
            gain = list(c.gain(intent))
            fig.add_trace(
                go.Scatter(
                    x=list(c.strengths), y=gain, mode="lines+markers", name=label, legendgroup=label
                ),
                1,
                1,
            )
            fig.add_trace(
                go.Scatter(
                    x=list(c.kl),
                    y=gain,
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=False,
                    text=[f"strength {s:g}" for s in c.strengths],
                    hovertemplate="KL %{x:.3f}<br>gain %{y:.3f}<br>%{text}",
                ),
                1,
                2,
            )
    if kl_budget is not None:
        fig.add_vline(
            x=kl_budget, line_dash="dash", annotation_text=f"KL budget {kl_budget:g}", row=1, col=2
        )
    fig.update_xaxes(title_text="strength", row=1, col=1)
    fig.update_xaxes(title_text="benign next-token KL (nats)", row=1, col=2)
    fig.update_yaxes(title_text="preferred-reply margin gain (nats/token)", row=1, col=1)
    fig.update_layout(template="plotly_white", height=420)
    return fig
