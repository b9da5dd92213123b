"""A self-contained HTML report: sections of plotly figures, tables, replies and notes.

plotly.js is embedded once, inline, with the first figure, so the file works offline and can be
mailed around. Figures are rendered through their own ``to_html`` method: this module never
imports plotly (figures come from :mod:`oyster_steer.plotting`).

Example:
    >>> report = Report("oyster_steer demo")
    >>> report.add_unavailable("Strength curve", "no steering vector for this model")
    >>> "not available" in report.render()
    True
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Report", "Section"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1280px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:28px;margin:8px 0 4px} h2{font-size:21px;margin:0 0 8px}
.subtitle{color:#556;margin-bottom:16px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:10px;padding:18px 22px;margin:18px 0}
.note{color:#445;font-size:14px;line-height:1.45;margin:4px 0 10px}
.unavailable{background:#f1f2f4;border:1px dashed #99a;border-radius:8px;padding:14px;color:#556}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #e6e8ee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f9;font-weight:600}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.replies td{width:25%} .reply{white-space:pre-wrap;font-size:13px;line-height:1.4}
.badge{display:inline-block;border-radius:9px;padding:1px 8px;font-size:11px;font-weight:600;margin-bottom:4px}
.b-constructive{background:#d8f3df;color:#17622f}.b-refusal{background:#fde2cc;color:#8a3b00}
.b-compliance{background:#fbd3d3;color:#8f1616}.b-other{background:#e6e8ee;color:#445}
.b-harmful_validation{background:#8f1616;color:#fff}.b-deflection{background:#e8e0f6;color:#4b2a85}
.b-incoherent{background:#f6f0c8;color:#6b5a00}
.prompt{font-weight:600;margin:0 0 4px} .meta{color:#667;font-size:12px}
nav a{margin-right:12px;font-size:13px;color:#2b5cb8;text-decoration:none}
footer{color:#667;font-size:12px;margin-top:24px}
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


@dataclass
class Section:
    """One titled block: an intro note, then figure / table / raw HTML, or an 'unavailable' box."""

    title: str
    note: str = ""
    figure: Any = None
    body: str = ""
    unavailable: str | None = None
    height: int = 460

    @property
    def anchor(self) -> str:
        return _slug(self.title)


@dataclass
class Report:
    """Collects sections and renders them as one HTML page (see module docstring)."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    footer: str = ""

    def add_figure(self, title: str, figure: Any, note: str = "", height: int = 460) -> None:
        """A plotly figure (anything with ``to_html``)."""
        self.sections.append(Section(title, note, figure=figure, height=height))

    def add_html(self, title: str, body: str, note: str = "") -> None:
        """Raw HTML (already escaped by the caller; see :func:`table_html`)."""
        self.sections.append(Section(title, note, body=body))

    def add_unavailable(self, title: str, reason: str, note: str = "") -> None:
        """A labelled placeholder: ``not available: <reason>``."""
        self.sections.append(Section(title, note, unavailable=reason))

    def figure_ids(self) -> list[str]:
        """The ``div`` ids the rendered figures get (``fig-<anchor>``)."""
        return [f"fig-{s.anchor}" for s in self.sections if s.figure is not None]

    def _section_html(self, s: Section, include_js: bool) -> str:
        parts = [f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>']
        if s.note:
            parts.append(f'<p class="note">{html.escape(s.note)}</p>')
        if s.unavailable is not None:
            parts.append(
                f'<div class="unavailable">not available: {html.escape(s.unavailable)}</div>'
            )
        if s.figure is not None:
            parts.append(
                s.figure.to_html(
                    full_html=False,
                    include_plotlyjs=include_js,
                    div_id=f"fig-{s.anchor}",
                    default_height=f"{s.height}px",
                    config={"displaylogo": False},
                )
            )
        parts.append(s.body)
        parts.append("</section>")
        return "\n".join(parts)

    def render(self) -> str:
        """The whole page; plotly.js is inlined with the first figure only."""
        nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in self.sections)
        body, js_done = [], False
        for s in self.sections:
            body.append(self._section_html(s, include_js=s.figure is not None and not js_done))
            js_done = js_done or s.figure is not None
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body><main>"
            f'<h1>{html.escape(self.title)}</h1><div class="subtitle">{html.escape(self.subtitle)}</div>'
            f"<nav>{nav}</nav>"
            + "\n".join(body)
            + f"<footer>{html.escape(self.footer)}</footer></main></body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Render to ``path`` (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path


def table_html(
    rows: Sequence[Sequence[Any]], header: Sequence[str], *, numeric: Sequence[int] = ()
) -> str:
    """An escaped HTML table; columns listed in ``numeric`` are right-aligned tabular numbers."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    lines = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{html.escape(str(v))}</td>'
            if i in numeric
            else f"<td>{html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        lines.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
