"""Copy a run's answer, verdict and tables into the README between their markers (``make reference-report``).

All blocks render one :class:`valbench.report.build.Report`, as ``summary.md`` and ``index.html`` do:

* ``<!-- reference-answer:start/end -->``: the run's status line (a partial run says so first) and the
  one-screen answer table (:func:`valbench.report.tables.answer_table`);
* ``<!-- reference-verdict:start/end -->``: per regime a line per dataset (:func:`valbench.report.tables.headline`)
  and, under it, where the win comes from (hostcp-fl against the best pipeline, cleaning vs selection);
* ``<!-- reference-table:start/end -->``: the full results table;
* ``<!-- reference-detection:start/end -->``: the mislabel-detection table.

The table block is required; the others are filled where their markers are present.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from valbench.report.build import Report, build_report
from valbench.report.stats import attribution_line, detection_table
from valbench.report.tables import answer_table, footnotes, headline, results_table

START, END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"
ANSWER_START, ANSWER_END = "<!-- reference-answer:start -->", "<!-- reference-answer:end -->"
VERDICT_START, VERDICT_END = "<!-- reference-verdict:start -->", "<!-- reference-verdict:end -->"
DETECTION_START, DETECTION_END = "<!-- reference-detection:start -->", "<!-- reference-detection:end -->"


def _replace(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def answer_markdown(report: Report) -> str:
    """The status line in bold, then the one-screen answer table."""
    table = answer_table(report.verdict)
    body = table.to_markdown(index=False) if not table.empty else "No successful cell: nothing to compare."
    notes = "".join(f"\n\n{n}" for n in footnotes(report.verdict, report.frames.derived))
    return f"**{report.frames.grid.line()}**\n\n{body}{notes}"


def verdict_lines(report: Report) -> str:
    """Markdown, per regime: a bullet per dataset with its verdict sentence, and under it the attribution
    sentence where the run has hostcp-fl or pipelines."""
    verdict = report.verdict
    regimes = verdict.regimes()
    out = []
    for regime in regimes:
        if regime and len(regimes) > 1:
            out += ["", f"**{regime.capitalize()}**", ""]
        for s in verdict.in_regime(regime):
            out.append(f"* **{s.setting}**: {headline(s)}")
            if s.setting in report.attributions:
                out.append("  * where the win comes from (area, points, 95 % CI): "
                           f"{attribution_line(report.attributions[s.setting])}")
    return "\n".join(out).strip("\n")


def detection_markdown(report: Report) -> str:
    """The mislabel-detection table of the noisy settings, or a note."""
    table = detection_table(report.detection)
    if table.empty:
        return "(no flipped labels, or no label-error detector, in this run: nothing to rank)"
    return table.to_markdown(index=False)


def update_readme(run_dir: Path, readme: Path) -> None:
    """Replace the text between each present pair of markers with the run's block (the table's are required)."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} lacks the markers {START} ... {END}")
    report = build_report(run_dir)
    text = _replace(text, START, END, results_table(report.frames).to_markdown(index=False))
    for start, end, render in ((ANSWER_START, ANSWER_END, answer_markdown), (VERDICT_START, VERDICT_END, verdict_lines),
                               (DETECTION_START, DETECTION_END, detection_markdown)):
        if start in text and end in text:
            text = _replace(text, start, end, render(report))
    readme.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m valbench.report.readme RUN_DIR README.md")
    update_readme(Path(sys.argv[1]), Path(sys.argv[2]))
