"""The report of a run: one tidy frame set, one verdict, a rendering per output (HTML, Markdown, terminal, figures).

Modules, in the order data flows: :mod:`~valbench.report.labels` (how cells are named),
:mod:`~valbench.report.frame` (records as tidy frames, built once, one sort), :mod:`~valbench.report.stats`
(numbers only), :mod:`~valbench.report.verdict` (the one choice rule and the frozen verdict),
:mod:`~valbench.report.build` (the Report every output renders), :mod:`~valbench.report.tables` (headings,
formats, flags), then one renderer per output: :mod:`~valbench.report.html` (``index.html``),
:mod:`~valbench.report.markdown` (``summary.md``), :mod:`~valbench.report.terminal` (what the CLI prints),
:mod:`~valbench.report.readme` (the README's generated blocks) and :mod:`~valbench.report.plots` (figures).

:func:`publish` and ``render_report`` are importable from here without importing matplotlib up front: the
runner imports :mod:`~valbench.report.labels` on every run and must stay light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def publish(run_dir: str | Path) -> str:
    """Build the run's report once, write every file (summary.md, results.csv, figures, index.html) and return
    what the terminal shows: the status line, the one-screen answer and the report's path."""
    from valbench.report.build import build_report
    from valbench.report.html import render_report
    from valbench.report.terminal import terminal_text

    report = build_report(run_dir)
    return terminal_text(report, render_report(run_dir, report))


def __getattr__(name: str) -> Any:
    """``valbench.report.render_report``: loaded on first use (PEP 562)."""
    if name == "render_report":
        from valbench.report.html import render_report

        return render_report
    raise AttributeError(f"module 'valbench.report' has no attribute {name!r}")
