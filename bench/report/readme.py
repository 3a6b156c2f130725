"""Copy a run's headline table and verdict into the README between their markers (``make reference-report``).

``<!-- reference-table:start/end -->`` receives the summary table; ``<!-- reference-verdict:start/end -->``,
where present, per regime (clean labels, each noise rate, each learner) one line per dataset: the best method
over the budgets and the cheapest within one point, then where the win comes from (hostcp-fl against the best
pipeline, cleaning vs selection); ``<!-- reference-detection:start/end -->``, where present, the
mislabel-detection table (AUC / F1 of the label-error detectors per noisy dataset).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from valbench.report.frame import budgets_frame, cells_frame, load_records
from valbench.report.labels import Labels
from valbench.report.stats import (attribution, attribution_line, detection_ranking, detection_table, near_best_lines,
                            ordered_regimes, regime_of, verdict)
from valbench.report.markdown import summary_table

START, END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"
VERDICT_START, VERDICT_END = "<!-- reference-verdict:start -->", "<!-- reference-verdict:end -->"
DETECTION_START, DETECTION_END = "<!-- reference-detection:start -->", "<!-- reference-detection:end -->"


def _replace(text: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def verdict_lines(records: list[dict]) -> str:
    """Markdown, per regime: a bullet per dataset from :func:`valbench.report.stats.near_best_lines`, and under it the
    attribution sentence (:func:`valbench.report.stats.attribution_line`) where the run has hostcp-fl or pipelines."""
    budgets, cells = budgets_frame(records), cells_frame(records)
    lines = near_best_lines(verdict(budgets, cells))
    why = {a.setting: attribution_line(a) for a in attribution(budgets, Labels(records).identities(records))}
    regimes = regime_of(cells)
    out = []
    for regime in ordered_regimes(regimes[s] for s in lines):
        if regime and len(set(regimes.values())) > 1:
            out += ["", f"**{regime.capitalize()}**", ""]
        for setting in (s for s in lines if regimes[s] == regime):
            out.append(f"* **{setting}**: {lines[setting]}")
            if setting in why:
                out.append(f"  * where the win comes from (area, points, 95 % CI): {why[setting]}")
    return "\n".join(out).strip("\n")


def detection_markdown(records: list[dict]) -> str:
    """The mislabel-detection table of the noisy settings (:func:`valbench.report.stats.detection_table`), or a note."""
    table = detection_table(detection_ranking(cells_frame(records)))
    if table.empty:
        return "(no flipped labels, or no label-error detector, in this run: nothing to rank)"
    return table.to_markdown(index=False)


def update_readme(run_dir: Path, readme: Path) -> None:
    """Replace the text between the markers with the run's summary table (and verdict, where marked)."""
    records = load_records(run_dir)
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} lacks the markers {START} ... {END}")
    text = _replace(text, START, END, summary_table(records).reset_index().to_markdown(index=False))
    if VERDICT_START in text and VERDICT_END in text:
        text = _replace(text, VERDICT_START, VERDICT_END, verdict_lines(records))
    if DETECTION_START in text and DETECTION_END in text:
        text = _replace(text, DETECTION_START, DETECTION_END, detection_markdown(records))
    readme.write_text(text)


if __name__ == "__main__":
    update_readme(Path(sys.argv[1]), Path(sys.argv[2]))
