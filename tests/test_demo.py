"""The main job: ``oyster-steer demo`` on the real default model with a reduced budget writes one
self-contained HTML report whose figures all carry real data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from oyster_steer.report import DemoConfig, Report, run_demo

FIGURES = (
    "fig-layer-sweep-risk-probe",
    "fig-layer-sweep-intent-probe",
    "fig-risk-boundary",
    "fig-per-token-probe-trace-borderline",
    "fig-per-token-probe-trace-vulnerable",
    "fig-per-token-probe-trace-malicious",
    "fig-strength-and-kl",
    "fig-policy-payoffs",
    "fig-control-decisions",
    "fig-evaluation-rates",
)


def _figure_data(html: str, div_id: str) -> list[dict]:
    """The ``data`` array plotly.js is given for the figure in ``div_id``."""
    call = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', html)
    assert call, f"no Plotly.newPlot call for {div_id}"
    data, _ = json.JSONDecoder().raw_decode(html, call.end())
    return data


def _has_numbers(trace: dict) -> bool:
    values = [trace.get(k) for k in ("x", "y", "z")]
    flat = [
        v
        for arr in values
        if isinstance(arr, list)
        for v in (arr if not arr or not isinstance(arr[0], list) else sum(arr, []))
    ]
    return any(isinstance(v, (int, float)) for v in flat) or any(
        isinstance(arr, dict) and "bdata" in arr for arr in values
    )


@pytest.mark.slow
def test_demo_writes_a_complete_offline_report(smollm, tmp_path: Path) -> None:
    cfg = DemoConfig(
        out=tmp_path / "report.html",
        work_dir=tmp_path / "work",
        n_per_class=1,
        max_new_tokens=8,
        sweep_stride=10,
        trace_tokens=6,
        calibrate_per_intent=2,
        use_shared=False,
        strict=True,
        progress=False,
    )
    outcome = run_demo(cfg, model=smollm)
    html = outcome.path.read_text()
    assert outcome.unavailable == {} and 'class="unavailable"' not in html
    # inlined once, offline: no <script src=...cdn...> (plotly.js itself names its CDN in a config default)
    assert html.count("plotly.js v") == 1 and 'src="https://cdn.plot.ly' not in html
    for div_id in FIGURES:
        assert f'id="{div_id}"' in html
        data = _figure_data(html, div_id)
        assert data and any(_has_numbers(t) for t in data), div_id
    section = html[html.index('id="evaluation"') : html.index('id="evaluation-rates"')]
    table = section[: section.index("</table>")]  # the verdict table (a coherence table follows)
    for cond in ("unsteered", "constructive vector", "control plan"):
        assert table.count(f"<td>{cond}</td>") == 4  # one row per intent
    replies = html[html.index('id="side-by-side-replies"') :]
    assert replies.count('class="badge') == 4 * 3  # four prompts x three conditions
    assert outcome.seconds["total"] > 0 and outcome.result.conditions == [
        "unsteered",
        "constructive vector",
        "control plan",
    ]


def test_report_labels_missing_pieces_and_escapes_text(tmp_path: Path) -> None:
    report = Report("t <1>")
    report.add_unavailable(
        "Strength and KL",
        "ArtifactError: vectors/x/constructive.safetensors not found",
    )
    report.add_html("Replies", "<b>ok</b>", note="a <script> note")
    html = report.write(tmp_path / "r.html").read_text()
    assert "not available: ArtifactError: vectors/x/constructive.safetensors not found" in html
    assert "t &lt;1&gt;" in html and "a &lt;script&gt; note" in html and "<b>ok</b>" in html
    assert report.figure_ids() == [] and "plotly.js" not in html


def test_side_by_side_replies_withhold_compliance_and_malicious_text() -> None:
    from oyster_steer.eval import EvalResult
    from oyster_steer.report._eval_html import replies_html

    long = " ".join(f"w{i}" for i in range(40))

    def row(cond: str, pid: str, intent: str, verdict: str) -> dict:
        return {"kind": "reply", "condition": cond, "id": pid, "intent": intent,
                "category": "c", "prompt": f"p {pid}", "verdict": verdict, "reply": long}  # fmt: skip

    rows = [
        row("unsteered", "m", "malicious", "compliance"),
        row("plan", "m", "malicious", "refusal"),
        row("unsteered", "v", "vulnerable", "compliance"),
        row("unsteered", "b", "benign", "constructive"),
    ]
    html = replies_html(EvalResult(rows, ["unsteered", "plan"]), ["m", "v", "b"])
    assert (
        html.count("w15 [rest withheld]") == 3 and "w16" in html
    )  # only the benign reply is whole
    assert html.count("w39") == 1
