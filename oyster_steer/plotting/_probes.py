"""Figures for probes: layer sweeps, decision boundaries, token traces, confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import torch

from ..core._metrics import confusion

__all__ = ["plot_boundary", "plot_confusion", "plot_layer_sweep", "plot_token_trace"]


def plot_layer_sweep(
    sweep: Any, metrics: Sequence[str] = ("auroc", "macro_f1"), splits: Sequence[str] | None = None
) -> go.Figure:
    """One line per (metric, split) over the swept layers; the best validation layer is marked.

    Example:
        >>> plot_layer_sweep(sweep, metrics=["auroc"]).show()  # doctest: +SKIP
    """
    fig = go.Figure()
    layers = [s.layer for s in sweep.sites]
    for split in splits or sweep.splits:
        for metric in metrics:
            dash = "solid" if split == "validation" else "dot" if split == "test" else "dash"
            fig.add_trace(
                go.Scatter(
                    x=layers,
                    y=sweep.values(metric, split),
                    mode="lines+markers",
                    name=f"{metric} ({split})",
                    line={"dash": dash},
                )
            )
    if "validation" in sweep.splits:
        best = sweep.best(metrics[0], "validation").site.layer
        fig.add_vline(
            x=best,
            line_dash="dash",
            line_color="grey",
            annotation_text=f"best on validation: {best}",
        )
    fig.update_layout(
        title=f"{sweep.task} probe by layer",
        xaxis_title="layer",
        yaxis_title="metric",
        template="plotly_white",
    )
    return fig


def _direction(probe: Any, class_index: int | None) -> torch.Tensor:
    """Unit vector in activation space along which the probe separates ``class_index``. (d,)"""
    w, _ = probe.folded()
    c = probe.n_classes - 1 if class_index is None else class_index
    u = w[c] - (w.sum(0) - w[c]) / (probe.n_classes - 1)
    return u / u.norm()


def plot_boundary(
    probe: Any,
    activations: Any,
    labels: Sequence[Any] | torch.Tensor,
    *,
    label_names: Sequence[str] | None = None,
    class_index: int | None = None,
    texts: Sequence[str] | None = None,
) -> go.Figure:
    """Scatter of activations: projection on the probe direction vs the top PCA component of the
    part orthogonal to it, one trace per class.

    Args:
        probe: a :class:`~oyster_steer.LinearProbe`.
        activations: (N, d) tensor, or Activations (the probe's site is used).
        labels: (N,) class ids or names; label_names: names for ids (default: the probe's labels).
        class_index: which class's direction (default: the last, i.e. positive / malicious).
        texts: hover text per point.

    Example:
        >>> plot_boundary(risk_probe, test_acts, test_labels).show()  # doctest: +SKIP
    """
    x = activations[probe.site] if hasattr(activations, "acts") else activations
    x = x.detach().float().cpu()  # (N, d)
    u = _direction(probe.to("cpu", torch.float32), class_index)  # (d,)
    along = x @ u  # (N,)
    rest = x - along[:, None] * u  # (N, d)
    rest = rest - rest.mean(0)
    _, _, v = torch.linalg.svd(rest, full_matrices=False)
    ortho = rest @ v[0]  # (N,)
    names = list(label_names or probe.labels)
    y = [
        names[int(v)] if not isinstance(v, str) else v
        for v in (labels.tolist() if isinstance(labels, torch.Tensor) else labels)
    ]
    fig = go.Figure()
    for name in dict.fromkeys(y):
        idx = [i for i, v in enumerate(y) if v == name]
        hover = [texts[i][:120] for i in idx] if texts is not None else None
        fig.add_trace(
            go.Scatter(
                x=along[idx].tolist(),
                y=ortho[idx].tolist(),
                mode="markers",
                name=name,
                text=hover,
                marker={"size": 5, "opacity": 0.7},
            )
        )
    fig.update_layout(
        title=f"{probe.meta.get('task', 'probe')} at {probe.site.name}",
        xaxis_title="projection on probe direction",
        yaxis_title="top orthogonal PC",
        template="plotly_white",
    )
    return fig


SPAN_COLORS = {"prompt": "#bdbdbd", "thinking": "#9575cd", "answer": "#66bb6a"}


def plot_token_trace(trace: Any, probe: str | None = None) -> go.Figure:
    """Heatmap of class probabilities (rows) over tokens (columns); a line marks where the reply starts.

    A coloured band above the heatmap marks each token's span (prompt, thinking, answer) when
    the trace has spans (:func:`~oyster_steer.token_trace` of a reasoning model).

    Example:
        >>> plot_token_trace(token_trace(model, probes, "I feel hopeless", generate=20)).show()  # doctest: +SKIP
    """
    names = [probe] if probe is not None else list(trace.probs)
    rows, z = [], []
    for name in names:
        for c, label in enumerate(trace.labels[name]):
            rows.append(f"{name}: {label}")
            z.append(trace.probs[name][:, c].tolist())
    x = [f"{i}:{t!r}" for i, t in enumerate(trace.tokens)]
    fig = go.Figure(
        go.Heatmap(z=z, x=x, y=rows, zmin=0, zmax=1, colorscale="Viridis", colorbar={"title": "p"})
    )
    if trace.n_prompt < len(trace.tokens):
        fig.add_vline(x=trace.n_prompt - 0.5, line_color="white", line_dash="dash")
    _span_bands(fig, list(getattr(trace, "spans", ()) or ()))
    fig.update_layout(
        title="probe readings per token", xaxis={"tickangle": -60}, template="plotly_white"
    )
    return fig


def _span_bands(fig: go.Figure, spans: Sequence[str]) -> None:
    """One coloured band per run of tokens in the same span, above the plot, labelled once."""
    start, labelled = 0, set()
    for i in range(1, len(spans) + 1):
        if i < len(spans) and spans[i] == spans[start]:
            continue
        name = spans[start]
        color = SPAN_COLORS.get(name, "#ffffff")
        fig.add_shape(
            type="rect", xref="x", yref="paper", x0=start - 0.5, x1=i - 0.5, y0=1.01, y1=1.06,
            fillcolor=color, line={"width": 0},
        )  # fmt: skip
        if start:
            fig.add_vline(x=start - 0.5, line_color=color, line_width=2)
        fig.add_annotation(
            x=(start + i - 1) / 2, y=1.085, xref="x", yref="paper", showarrow=False,
            text=name if name not in labelled else "", font={"color": color},
        )  # fmt: skip
        labelled.add(name)
        start = i


def plot_confusion(
    pred: torch.Tensor, labels: torch.Tensor, label_names: Sequence[str], *, normalize: bool = True
) -> go.Figure:
    """Confusion matrix heatmap (rows: true class, columns: predicted), row-normalised by default.

    Args:
        pred: (N,) predicted ids, or (N, C) probabilities (argmax is taken).
        labels: (N,) true ids.

    Example:
        >>> plot_confusion(probe.probs(x), y, probe.labels).show()  # doctest: +SKIP
    """

    pred = pred.argmax(-1) if pred.dim() == 2 else pred
    cm = confusion(pred.cpu(), labels.cpu(), len(label_names)).double()  # (C, C)
    z = cm / cm.sum(1, keepdim=True).clamp(min=1) if normalize else cm
    text = [[f"{int(n)}" for n in row] for row in cm.tolist()]
    fig = go.Figure(
        go.Heatmap(
            z=z.tolist(),
            x=list(label_names),
            y=list(label_names),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
        )
    )
    fig.update_layout(
        title="confusion (rows: true, columns: predicted)",
        xaxis_title="predicted",
        yaxis_title="true",
        yaxis={"autorange": "reversed"},
        template="plotly_white",
    )
    return fig
