"""The report of a run: one tidy frame set, one verdict, a rendering per output (HTML, Markdown, terminal, figures).

Modules: :mod:`~valbench.report.frame` (records as frames), :mod:`~valbench.report.labels` (how cells are named),
:mod:`~valbench.report.stats` (numbers only), :mod:`~valbench.report.html` (``index.html``),
:mod:`~valbench.report.markdown` (``summary.md``), :mod:`~valbench.report.readme` (the README's generated
blocks) and :mod:`~valbench.report.plots` (the figures).

``render_report`` is importable from here without importing matplotlib up front: the runner imports
:mod:`~valbench.report.labels` on every run and must stay light.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``valbench.report.render_report``: loaded on first use (PEP 562)."""
    if name == "render_report":
        from valbench.report.html import render_report

        return render_report
    raise AttributeError(f"module 'valbench.report' has no attribute {name!r}")
