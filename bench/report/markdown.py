"""``summary.md`` and ``results.csv`` of a run, rendered from its :class:`valbench.report.build.Report`.

``summary.md`` opens with the run's status (a partial run says so on its first line) and the one-screen answer,
then per regime and dataset the verdict sentence, every entry with its seeds and cost, the best per budget,
the best of each family, where the win comes from and the mislabel-detection ranking; then the rank test
with its blocks, the full results table (one row per dataset and method variant) and the cells that did not
succeed. ``results.csv`` holds one row per cell and budget with the same labels.
"""

from __future__ import annotations

from valbench.report.build import Report
from valbench.report.frame import OK
from valbench.report.stats import attribution_table, detection_table, family_best_table
from valbench.report.tables import answer_table, budget_table, entries_table, footnotes, headline, results_table


def _table(frame) -> str:
    return frame.to_markdown(index=False) if not frame.empty else "(nothing to show)"


def verdict_markdown(report: Report) -> list[str]:
    """The details per regime and dataset, as markdown lines."""
    verdict = report.verdict
    lines = ["## Verdict per dataset", "",
             "Per regime (clean labels, each noise rate, each learner) and dataset: the entry with the highest "
             "area under the subset-value curve of the judged metric (mean over the seeds it shares with random); "
             "exact ties go to the cheaper entry in learner fits, then the name; random competes for the cheapest "
             "entry within one point. Intervals: paired over seeds, 95 % t; none below two paired seeds.", ""]
    regimes = verdict.regimes()
    head = "####" if len(regimes) > 1 else "###"
    for regime in regimes:
        settings = verdict.in_regime(regime)
        if len(regimes) > 1:
            lines += [f"### {regime.capitalize()}", ""]
        for s in settings:
            lines += [f"{head} {s.setting}", "", headline(s), ""]
            if s.metric_note:
                lines += [f"Judged on accuracy: {s.metric_note}.", ""]
            lines += [_table(entries_table(s)), "", _table(budget_table(s)), ""]
            rows = report.family_bests
            if not rows.empty:
                family = family_best_table(rows[rows.setting == s.setting])
                if not family.empty:
                    lines += [family.to_markdown(index=False), ""]
        here = [report.attributions[s.setting] for s in settings if s.setting in report.attributions]
        if here:
            lines += ["Where the win comes from (subset-value area, paired over seeds, points):", "",
                      attribution_table(here).to_markdown(index=False), ""]
        detection = detection_table(report.detection[report.detection.setting.isin([s.setting for s in settings])])
        if not detection.empty:
            lines += ["Mislabel detection, AUC / 2-means F1 (rank by AUC among all methods of the run):", "",
                      detection.to_markdown(index=False), ""]
    return lines


def ranks_markdown(report: Report) -> list[str]:
    """The rank test of each regime: its blocks, and the mean ranks or why there was no test."""
    lines = ["## Ranks", "", "Friedman test with the Nemenyi critical difference (autorank; Demšar 2006), within each "
             "regime. One block per (dataset, seed): its area under the subset-value curve of the judged metric "
             "(budgets of one dataset and seed are the same subsets growing, so they are one block).", ""]
    for regime, analysis in report.verdict.ranks.items():
        if analysis.result is None:
            lines += [f"* {regime or 'all'}: no rank test ({analysis.reason})."]
            continue
        ranks = ", ".join(f"{m} {r:.2f}" for m, r in analysis.mean_ranks.items())
        dropped = f"; left out (missing blocks): {', '.join(analysis.dropped)}" if analysis.dropped else ""
        lines += [f"* {regime or 'all'}: {analysis.blocks}, p = {analysis.result.pvalue:.2g}{dropped}. "
                  f"Mean ranks (1 = best): {ranks}."]
    return lines + [""]


def summary_markdown(report: Report) -> str:
    """The whole ``summary.md``."""
    frames = report.frames
    cells = frames.cells
    lines = [f"# {report.title('summary')}", ""]
    if frames.grid.note:
        lines += [f"Run note: {frames.grid.note}", ""]
    lines += ["## The answer", ""]
    table = answer_table(report.verdict, report.entry_stability)
    lines += [_table(table) if not table.empty else "No successful cell: nothing to compare.", ""]
    notes = footnotes(report.verdict, report.frames.derived)
    lines += [*notes, ""] if notes else []
    if not frames.budgets.empty:
        lines += verdict_markdown(report) + ranks_markdown(report)
    lines += ["## All results", "",
              "Test accuracy of the learner retrained on the top-k subset (mean ± standard error over seeds; "
              "(n=1): one seed, no error shown); area: the judged metric's, with its 95 % interval.", "",
              _table(results_table(frames)) if not cells.empty else "(no cell)"]
    failures = cells[cells.status != OK] if not cells.empty else cells
    if len(failures):
        lines += ["", "## Cells that did not succeed", "",
                  failures[["setting", "method", "seed", "status", "error"]].to_markdown(index=False)]
    return "\n".join(lines) + "\n"


def write_summary(report: Report) -> str:
    """Write ``summary.md`` and ``results.csv`` into the run directory and return the markdown."""
    run_dir = report.frames.run_dir
    report.frames.budgets.to_csv(run_dir / "results.csv", index=False)
    text = summary_markdown(report)
    tmp = run_dir / "summary.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(run_dir / "summary.md")
    return text
