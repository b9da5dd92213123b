"""The demo's probe stages: layer sweeps, probes, risk boundary, token traces (and the footer).

Each stage computes one piece and adds its figure or table to the report; the steering stages
(vector, strength curve, control plan, evaluation) are in :mod:`._steering`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..activations._cache import cached_capture
from ..activations._capture import Pool
from ..core._errors import ArtifactError
from ..data import default_data_dir, load_all, load_starter
from ..models._model import load_model
from ..probes._probe import load_probe
from ..probes._sweep import sweep_layers
from ..probes._trace import token_trace
from ._artifacts import model_dirname, shipped
from ._html import Report, table_html

if TYPE_CHECKING:
    from ..models._model import OysterModel
    from ._config import DemoConfig


def load(cfg: DemoConfig) -> OysterModel:

    return load_model(cfg.model, backend=cfg.backend, device=cfg.device)


def starter_splits() -> dict[str, Any]:
    """The starter set's hash splits (always available, no ../shared needed)."""

    return load_starter().splits()


def _cache(cfg: DemoConfig) -> Path:
    return cfg.work_dir / "capture-cache"


def _sweep_sites(model: OysterModel, cfg: DemoConfig) -> list[str]:
    layers = sorted(set(range(0, model.n_layers, cfg.sweep_stride)) | {model.n_layers - 1})
    return [f"blocks.{i}.hook_resid_post" for i in layers]


def _acts_at(
    model: OysterModel, texts: list[str], site: str, cfg: DemoConfig, pool: Pool = "last"
) -> Any:
    """(N, d) activations at ``site`` (``pool``: the features a probe was fit on: the last
    token, the prompt mean or both side by side, (N, 2d)), from the sweep's capture cache when
    it has them."""

    swept = _sweep_sites(model, cfg)
    sites = swept if site in swept else [site]
    return cached_capture(model, texts, sites, pool=pool, root=_cache(cfg), progress=cfg.progress)[
        site
    ]


def layer_sweeps(model: OysterModel, data: dict[str, Any], cfg: DemoConfig) -> dict[str, Any]:
    """Risk and intent probes at every ``sweep_stride``-th layer, on the starter splits."""

    sites = _sweep_sites(model, cfg)
    common: dict[str, Any] = dict(sites=sites, cache=_cache(cfg), progress=cfg.progress)
    return {
        task: sweep_layers(
            model, data["train"], data["validation"], data["test"], task=task, **common
        )
        for task in ("risk", "intent")
    }


def add_sweep_figure(report: Report, task: str, sweep: Any) -> None:
    from ..plotting import plot_layer_sweep  # plotly: optional, loaded on use

    metrics = ("auroc",) if task == "risk" else ("macro_f1", "auroc")
    note = (
        f"A {task} probe trained per layer on the starter set's train split (last prompt token, resid_post); "
        "solid: validation, dotted: test. The layer is chosen on validation only."
    )
    report.add_figure(
        f"Layer sweep: {task} probe", plot_layer_sweep(sweep, metrics=metrics), note, height=420
    )


def _probe_for(task: str, model: OysterModel, sweeps: dict[str, Any]) -> tuple[Any, str] | None:
    """The shipped probe for ``task`` if it loads for this model, else the sweep's best one."""

    path, problem = shipped("probes", model, task), ""
    if path is not None:
        try:
            return load_probe(path, model), f"shipped: {path.parent.name}/{path.name}"
        except ArtifactError as err:
            problem = f"shipped probe unusable ({err}); "
    if task in sweeps:
        return sweeps[task].best(
            "auroc"
        ).probe, problem + "trained now on the starter set (best validation layer)"
    return None


def probes(model: OysterModel, sweeps: dict[str, Any], report: Report) -> dict[str, Any]:
    """The shipped risk and intent probes, or the sweep's best-on-validation probe for each."""
    out, rows = {}, []
    for task in ("risk", "intent"):
        found = _probe_for(task, model, sweeps)
        if found is None:
            continue
        out[task], origin = found
        metrics = json.loads(out[task].meta.get("metrics", "{}"))
        shown = ", ".join(
            f"{k}={v:.3f}" for k, v in metrics.items() if k.endswith(("auroc", "macro_f1"))
        )
        rows.append([task, out[task].site.name, " / ".join(out[task].labels), origin, shown or "–"])
    if not out:
        raise FileNotFoundError(
            f"no shipped probes under probes/{model_dirname(model)} and no layer sweep to train them"
        )
    report.add_html(
        "Probes",
        table_html(rows, ["probe", "site", "classes", "origin", "recorded metrics"]),
        "The probes that read risk and intent from the residual stream, and where they came from.",
    )
    return out


def boundary(
    report: Report, model: OysterModel, probe: Any, data: dict[str, Any], cfg: DemoConfig
) -> None:
    from ..plotting import plot_boundary  # plotly: optional, loaded on use

    held_out = data["validation"] + data["test"]
    acts = _acts_at(model, held_out.texts, probe.site.name, cfg, pool=probe.pool)
    fig = plot_boundary(probe, acts, held_out.labels("intent"), texts=held_out.texts)
    note = (
        "Held-out starter prompts (validation + test) projected on the risk probe's direction (x) and the main "
        "orthogonal direction (y), coloured by intent: malicious prompts should sit right, vulnerable and "
        "borderline ones in between, benign ones left."
    )
    report.add_figure("Risk boundary", fig, note, height=520)


def _pick(prompts: Any, intent: str) -> Any:
    rows = sorted(prompts.filter(intent=intent), key=lambda r: (len(r.text), r.id))
    return rows[len(rows) // 2] if rows else None


def _user_part(model: OysterModel, trace: Any, text: str) -> Any:
    """The trace without the chat template's system preamble (the user's message, then the reply)."""
    from dataclasses import replace

    keep = len(model.tokenizer(text, add_special_tokens=False)["input_ids"]) + 6
    start = max(0, trace.n_prompt - keep)
    probs = {k: v[start:] for k, v in trace.probs.items()}
    return replace(
        trace,
        tokens=trace.tokens[start:],
        token_ids=trace.token_ids[start:],
        n_prompt=trace.n_prompt - start,
        probs=probs,
    )


def traces(
    report: Report,
    model: OysterModel,
    probes: dict[str, Any],
    data: dict[str, Any],
    cfg: DemoConfig,
) -> None:
    from ..plotting import plot_token_trace  # plotly: optional, loaded on use

    for intent in ("borderline", "vulnerable", "malicious"):
        rec = _pick(data["test"], intent)
        if rec is None:
            continue
        trace = _user_part(
            model, token_trace(model, probes, rec.text, generate=cfg.trace_tokens), rec.text
        )
        fig = plot_token_trace(trace)
        fig.update_layout(title=f"{intent} prompt: {rec.text[:90]}")
        note = "Probe probabilities at every token of the chat-formatted prompt and of the unsteered reply (right of the dashed line)."
        report.add_figure(f"Per-token probe trace ({intent})", fig, note, height=380)


def shared_extras(
    report: Report, model: OysterModel, probes: dict[str, Any], cfg: DemoConfig
) -> None:
    """With ../shared/data present: the risk boundary on held-out public prompts."""

    if default_data_dir() is None or "risk" not in probes:
        return
    from ..plotting import plot_boundary  # plotly: optional, loaded on use

    probe = probes["risk"]
    public = load_all(include_starter=False).split("test").sample(25, seed=cfg.seed)
    acts = cached_capture(
        model,
        public.texts,
        [probe.site.name],
        pool=probe.pool,
        root=_cache(cfg),
        progress=cfg.progress,
    )
    fig = plot_boundary(probe, acts[probe.site.name], public.labels("intent"), texts=public.texts)
    report.add_figure(
        "Risk boundary on public prompts (../shared/data)",
        fig,
        "Up to 25 test-split prompts per intent from the public sets (never used to choose anything here).",
        height=520,
    )


def footer(seconds: dict[str, float], unavailable: dict[str, str], cfg: DemoConfig) -> str:
    times = ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items())
    missing = f" Unavailable: {', '.join(unavailable)}." if unavailable else ""
    return f"Stage times: {times}.{missing} Reproduce with `oyster-steer demo --model {cfg.model}` (seed {cfg.seed})."
