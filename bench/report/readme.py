"""Copy a run's answer, verdict and detection table into the README between their markers
(``make reference-report`` for the reference run; ``python -m valbench.report.readme reports/real README.md real``
for the real grid).

All blocks render one :class:`valbench.report.build.Report`, as ``summary.md`` and ``index.html`` do; ``NAME`` is
the block's name (``reference`` by default, ``real``):

* ``<!-- NAME-answer:start/end -->``: the run's status line (a partial run says so first) and the
  one-screen answer table (:func:`valbench.report.tables.answer_table`);
* ``<!-- NAME-verdict:start/end -->``: per regime a line per dataset (:func:`valbench.report.tables.headline`)
  and, under it, where the win comes from (hostcp-fl against the best pipeline, cleaning vs selection);
* ``<!-- NAME-detection:start/end -->``: the mislabel-detection table.

The answer block is required; the others are filled where their markers are present. The full results table
is not copied: it is as long as the grid, and ``summary.md`` and ``results.csv`` beside the report hold it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from valbench.report.build import Report, build_report
from valbench.report.stats import attribution_line, detection_table
from valbench.report.tables import answer_table, footnotes, headline



def markers(block: str, name: str = "reference") -> tuple[str, str]:
    """The start and end markers of one generated block (``answer``, ``verdict``, ``detection``) of run ``name``."""
    return f"<!-- {name}-{block}:start -->", f"<!-- {name}-{block}:end -->"


ANSWER_START, ANSWER_END = markers("answer")
VERDICT_START, VERDICT_END = markers("verdict")
DETECTION_START, DETECTION_END = markers("detection")


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


def update_readme(run_dir: Path, readme: Path, name: str = "reference") -> None:
    """Replace the text between each present pair of run ``name``'s markers with the run's block (the answer's
    are required)."""
    text = readme.read_text()
    start, end = markers("answer", name)
    if start not in text or end not in text:
        raise SystemExit(f"{readme} lacks the markers {start} ... {end}")
    report = build_report(run_dir)
    for block, render in (("answer", answer_markdown), ("verdict", verdict_lines), ("detection", detection_markdown)):
        start, end = markers(block, name)
        if start in text and end in text:
            text = _replace(text, start, end, render(report))
    readme.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: python -m valbench.report.readme RUN_DIR README.md [NAME: reference (default), real]")
    update_readme(Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:])
