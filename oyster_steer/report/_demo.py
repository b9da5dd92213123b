"""The demo: probes, vectors and a control plan on the default model, evaluated, in one HTML report.

``run_demo(DemoConfig())`` loads the model, reads (or trains) the shipped probes, steering vectors
and control pack, evaluates unsteered vs constructive vector vs control plan on a held-out part of
the starter set, and writes one self-contained HTML file. Every stage is timed; a stage whose
piece is missing is shown as "not available: <reason>" instead of failing the whole report
(``strict=True`` raises instead).

Example:
    >>> outcome = run_demo(DemoConfig(n_per_class=2, max_new_tokens=24))   # doctest: +SKIP
    >>> outcome.path  # doctest: +SKIP
    PosixPath('out/report.html')
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from . import _stages as st
from . import _steering as sg
from ._config import DemoConfig
from ._html import Report

__all__ = ["DemoConfig", "DemoOutcome", "run_demo"]

T = TypeVar("T")


@dataclass
class DemoOutcome:
    """Where the report went, what each stage took, and which stages were unavailable."""

    path: Path
    seconds: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    result: Any = None

    @property
    def total_seconds(self) -> float:
        return self.seconds.get("total", sum(self.seconds.values()))


class _Run:
    """Timed, fault-isolated stages writing into one report."""

    def __init__(self, cfg: DemoConfig, report: Report) -> None:
        self.cfg, self.report = cfg, report
        self.seconds: dict[str, float] = {}
        self.unavailable: dict[str, str] = {}

    def stage(self, name: str, fn: Callable[[], T], *, show_as: str | None = None) -> T | None:
        """Run ``fn``; on failure record the reason (and add an 'unavailable' box if ``show_as``)."""
        start = time.perf_counter()
        if self.cfg.progress:
            print(f"[demo] {name} ...", file=sys.stderr, flush=True)
        try:
            return fn()
        except Exception as err:  # a missing piece must not sink the whole report
            if self.cfg.strict:
                raise
            reason = _reason(err)
            self.unavailable[name] = reason
            if self.cfg.progress:
                print(f"[demo] {name}: not available: {reason}", file=sys.stderr)
                traceback.print_exc(limit=2, file=sys.stderr)
            if show_as:
                self.report.add_unavailable(show_as, reason)
            return None
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no message'}"


def run_demo(cfg: DemoConfig | None = None, *, model: Any = None) -> DemoOutcome:
    """Run the whole demo and write the report; returns where it is and how long each stage took.

    Args:
        cfg: what to run (default :class:`DemoConfig`).
        model: an already loaded model to use instead of loading ``cfg.model``.

    Example:
        >>> run_demo(DemoConfig(out=Path("out/report.html"))).path   # doctest: +SKIP
    """
    cfg = cfg or DemoConfig()
    report = Report("oyster_steer: constructive-safety steering demo")
    run = _Run(cfg, report)
    t0 = time.perf_counter()
    if model is None:  # not a stage: without a model there is no report
        model = st.load(cfg)
        run.seconds["load model"] = time.perf_counter() - t0
    report.subtitle = f"model {model.name} ({model.n_layers} layers, d={model.d_model}, fingerprint {model.fingerprint}), backend {model.backend}"
    data = st.starter_splits()
    sweeps = (
        run.stage("layer sweep", lambda: st.layer_sweeps(model, data, cfg), show_as="Layer sweep")
        or {}
    )
    for task, sweep in sweeps.items():
        st.add_sweep_figure(report, task, sweep)
    probes = run.stage("probes", lambda: st.probes(model, sweeps, report), show_as="Probes") or {}
    if "risk" in probes:
        run.stage(
            "risk boundary",
            lambda: st.boundary(report, model, probes["risk"], data, cfg),
            show_as="Risk boundary",
        )
    if probes:
        run.stage(
            "token traces",
            lambda: st.traces(report, model, probes, data, cfg),
            show_as="Per-token probe traces",
        )
    vector = run.stage(
        "constructive vector",
        lambda: sg.vector(model, data, cfg),
        show_as="Constructive steering vector",
    )
    if vector is not None:
        run.stage(
            "strength curve",
            lambda: sg.strength_curve(report, model, vector, data, cfg),
            show_as="Strength and KL",
        )
    plan = run.stage(
        "control plan", lambda: sg.plan(model, probes, vector, cfg), show_as="Control plan"
    )
    if plan is not None:
        run.stage(
            "policy",
            lambda: sg.policy_figures(report, model, plan, data, cfg),
            show_as="Control decisions",
        )
    result = run.stage(
        "evaluation",
        lambda: sg.evaluation(report, model, data, vector, plan, cfg),
        show_as="Evaluation",
    )
    if cfg.use_shared:
        run.stage("shared data", lambda: st.shared_extras(report, model, probes, cfg))
    run.seconds["total"] = time.perf_counter() - t0
    report.footer = st.footer(run.seconds, run.unavailable, cfg)
    path = report.write(cfg.out)
    return DemoOutcome(path, run.seconds, run.unavailable, result)
