"""Copy a run's headline table and verdict into the README between their markers (``make reference-report``).

``<!-- reference-table:start/end -->`` receives the summary table; ``<!-- reference-verdict:start/end -->``,
where present, one line per dataset: the best method over the budgets and the cheapest within one point.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from valbench.results import budgets_frame, cells_frame, load_records
from valbench.stats import near_best_lines, verdict
from valbench.summary import summary_table

START, END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"
VERDICT_START, VERDICT_END = "<!-- reference-verdict:start -->", "<!-- reference-verdict:end -->"


def _replace(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def verdict_lines(records: list[dict]) -> str:
    """Markdown bullets, one per dataset, from :func:`valbench.stats.near_best_lines`."""
    lines = near_best_lines(verdict(budgets_frame(records), cells_frame(records)))
    return "\n".join(f"* **{setting}**: {line}" for setting, line in lines.items())


def update_readme(run_dir: Path, readme: Path) -> None:
    """Replace the text between the markers with the run's summary table (and verdict, where marked)."""
    records = load_records(run_dir)
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} lacks the markers {START} ... {END}")
    text = _replace(text, START, END, summary_table(records).reset_index().to_markdown(index=False))
    if VERDICT_START in text and VERDICT_END in text:
        text = _replace(text, VERDICT_START, VERDICT_END, verdict_lines(records))
    readme.write_text(text)


if __name__ == "__main__":
    update_readme(Path(sys.argv[1]), Path(sys.argv[2]))
