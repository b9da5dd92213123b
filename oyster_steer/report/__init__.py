"""The demo and its self-contained HTML report (plotly.js inlined once, works offline).

Example:
    >>> from oyster_steer.report import DemoConfig, run_demo
    >>> run_demo(DemoConfig(n_per_class=2)).path      # doctest: +SKIP
    PosixPath('out/report.html')
"""

from __future__ import annotations

from ._demo import DemoConfig, DemoOutcome, run_demo
from ._html import Report, Section, table_html

__all__ = ["DemoConfig", "DemoOutcome", "Report", "Section", "run_demo", "table_html"]
