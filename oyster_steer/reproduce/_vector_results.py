"""The ``## Steering vectors`` section of RESULTS.md: methods compared on held-out prompts.

For each shipped constructive vector (mean_diff, pca, learned) it calibrates strength on the
test split, reports the margin gain of constructive over refusal and compliance replies on
vulnerable and malicious prompts at equal benign KL, and shows greedy replies before and after.
Numbers come only from this module's run; nothing is copied in by hand.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backends import get_backend
from ..data._contrast import sample_records
from ..eval._rules import shown_reply
from ..steering._calibrate import CalibrationCache, StrengthCurve, calibrate_strength
from ..steering._steer import steer
from ..vectors._vector import SteeringVector
from ._markdown import write_section as _write_section

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["SECTION", "generations", "results_markdown", "write_section"]

SECTION = "## Steering vectors"


def _fmt(x: float) -> str:
    return f"{x:+.3f}" if x == x else "n/a"


def comparison_table(curves: dict[str, StrengthCurve], budgets: Sequence[float]) -> str:
    """Markdown: per method and KL budget, margin gain per intent and negative."""
    rows = [
        "| method | benign KL | strength | vulnerable vs refusal | vulnerable vs compliance | malicious vs refusal | malicious vs compliance | mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for budget in budgets:
        for method, c in curves.items():
            cells = []
            for intent in ("vulnerable", "malicious"):
                for neg in ("refusal", "compliance"):
                    values = np.asarray(c.margins[intent][neg]) - c.margins[intent][neg][0]
                    cells.append(_fmt(c._at(values, budget)[1]))
            strength = c._at(c.gain(), budget)[0]
            reach = "" if c.reaches(budget) else " (not reached: max KL " + f"{max(c.kl):.3f})"
            rows.append(
                f"| {method} | {budget:g}{reach} | {strength:.2f} | {' | '.join(cells)} | {_fmt(c.gain_at_kl(budget))} |"
            )
    return "\n".join(rows)


def verdict(
    curves: dict[str, StrengthCurve],
    budgets: Sequence[float],
    a: str = "learned",
    b: str = "mean_diff",
) -> str:
    """One generated sentence: does ``a`` beat ``b`` on mean margin gain at every KL budget?"""
    if a not in curves or b not in curves:
        return ""
    pairs = [(k, curves[a].gain_at_kl(k), curves[b].gain_at_kl(k)) for k in budgets]
    wins = [k for k, x, y in pairs if x > y]
    detail = "; ".join(
        f"KL {k:g}: {x:+.3f} vs {y:+.3f} ({x / y:.1f}x)"
        if y > 0
        else f"KL {k:g}: {x:+.3f} vs {y:+.3f}"
        for k, x, y in pairs
    )
    if len(wins) == len(pairs):
        head = f"**Verdict:** `{a}` beats `{b}` on mean margin gain at every benign-KL budget"
    elif wins:
        head = (
            f"**Verdict:** `{a}` beats `{b}` only at benign KL {', '.join(f'{k:g}' for k in wins)}"
        )
    else:
        head = f"**Verdict:** `{a}` does **not** beat `{b}` on mean margin gain at any benign-KL budget"
    return (
        f"{head} ({detail}). Gains are teacher-forced likelihood margins; whether greedy replies "
        "change is measured by the evaluation section."
    )


def curve_table(curves: dict[str, StrengthCurve]) -> str:
    """Markdown: the raw calibration grid of every method."""
    rows = [
        "| method | strength | benign KL | gain vulnerable | gain malicious |",
        "|---|---|---|---|---|",
    ]
    for method, c in curves.items():
        gv, gm = c.gain("vulnerable"), c.gain("malicious")
        for k, s in enumerate(c.strengths):
            rows.append(f"| {method} | {s:g} | {c.kl[k]:.4f} | {_fmt(gv[k])} | {_fmt(gm[k])} |")
    return "\n".join(rows)


def generations(
    model: OysterModel,
    vectors: dict[str, SteeringVector],
    records: Sequence[Any],
    max_new_tokens: int = 40,
) -> dict[str, list[str]]:
    """Greedy replies of ``records`` unsteered and with each vector at its stored strength."""

    ids, mask = model.encode([r.text for r in records])
    backend = get_backend(model.backend)

    def run() -> list[str]:
        out = backend.generate(model, ids, mask, max_new_tokens=max_new_tokens)[:, ids.shape[1] :]
        return [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in out]

    replies = {"unsteered": run()}
    for name, vec in vectors.items():
        with steer(model, vec):
            replies[name] = run()
    return replies


def _cell(text: str, intent: str) -> str:

    return shown_reply(" ".join(text.replace("|", "/").split()), intent)


def generation_table(records: Sequence[Any], replies: dict[str, list[str]]) -> str:
    out = []
    for i, r in enumerate(records):
        out.append(f"**{r.intent}**: {_cell(r.text, 'prompt')}\n")
        out.append("| condition | greedy reply |\n|---|---|")
        out.extend(f"| {name} | {_cell(texts[i], r.intent)} |" for name, texts in replies.items())
        out.append("")
    return "\n".join(out)


def example_records(heldout: Any, seed: int = 0) -> list[Any]:
    """One short held-out prompt per intent (vulnerable, malicious, borderline, benign)."""
    short = lambda r: len(r.text) <= 120  # noqa: E731
    return [
        sample_records(heldout, (i,), 1, seed, short)[0]
        for i in ("vulnerable", "malicious", "borderline", "benign")
    ]


def results_markdown(
    model: OysterModel,
    vectors: dict[str, SteeringVector],
    heldout: Any,
    *,
    budgets: Sequence[float] = (0.05, 0.1, 0.2),
    strengths: dict[str, Sequence[float]] | None = None,
    n_per_intent: int = 24,
    command: str = "",
    progress: bool = True,
) -> tuple[str, dict[str, StrengthCurve]]:
    """The whole section as markdown, and the curves it was computed from."""
    started = time.monotonic()
    curves = {}
    cache = CalibrationCache()  # same prompts for every vector: material and strength 0 once
    for name, vec in vectors.items():
        grid = (strengths or {}).get(vec.method) or (0.5, 1, 2, 4, 8)
        curves[name] = calibrate_strength(
            model, vec, heldout, grid, n_per_intent=n_per_intent, progress=progress, cache=cache
        )
    records = example_records(heldout)
    replies = generations(model, vectors, records)
    first = next(iter(curves.values()))
    lines = [
        SECTION,
        "",
        f"Generated by `{command}` in {(time.monotonic() - started) / 60:.1f} min on {model.name} "
        f"({model.device}). Held-out **test** split: {first.n_prompts['vulnerable']} vulnerable and "
        f"{first.n_prompts['malicious']} malicious prompts for margins, {first.n_prompts['kl']} benign and "
        "borderline prompts for KL. Vectors: "
        + ", ".join(f"`{n}` ({v.method}, {', '.join(v.directions)})" for n, v in vectors.items())
        + ".",
        "",
        "*Margin* = mean per-token log-likelihood of the constructive exemplar reply minus that of the bare "
        "refusal (or the redacted compliance) reply, teacher-forced, first 48 reply tokens; *gain* = margin "
        "with the vector minus margin without it (nats/token). *Benign KL* = KL(unsteered || steered) of "
        "benign/borderline prompts' next-token distributions at the last prompt token and the model's own "
        "first 8 greedy tokens. Methods are compared at equal benign KL by interpolating each calibration "
        "curve.",
        "",
        "### Margin gain at matched benign KL",
        "",
        comparison_table(curves, budgets),
        "",
        verdict(curves, budgets),
        "",
        "### Calibration grids",
        "",
        curve_table(curves),
        "",
        "### Greedy replies (40 tokens) before and after, each vector at its shipped strength",
        "",
        "Replies to malicious prompts are cut after a few words.",
        "",
        generation_table(records, replies),
    ]
    return "\n".join(lines).rstrip() + "\n", curves


def write_section(path: str | Path, markdown: str, heading: str = SECTION) -> Path:
    """Replace (or append) the ``heading`` section of a markdown file, leaving other sections alone."""
    return _write_section(path, markdown, heading)
