"""What ``valbench run``, ``valbench report`` and ``make bench`` print: the run's status line, the one-screen
answer (:func:`valbench.report.tables.answer_table`) and where the full report is."""

from __future__ import annotations

from pathlib import Path

from valbench.report.build import Report
from valbench.report.tables import answer_table, footnotes


def terminal_text(report: Report, html: Path | None = None) -> str:
    """The status line, the answer table (plain text, one row per regime x dataset) and the report's path."""
    lines = [report.title("answer")]
    table = answer_table(report.verdict, report.entry_stability)
    lines.append(table.to_markdown(index=False, tablefmt="simple") if not table.empty
                 else "no successful cell: nothing to compare")
    lines += footnotes(report.verdict, report.frames.derived)
    lines.append(f"full report: {html or report.frames.run_dir / 'index.html'} (details: summary.md beside it)")
    return "\n".join(lines)
