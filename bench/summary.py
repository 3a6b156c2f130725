"""The plain summary of a run: the verdict, then a markdown table per dataset and method (``summary.md``).

Rows are labelled by :mod:`valbench.labels`, so each variant of a method (``loo (utility=accuracy)``) is its
own row; ``results.csv`` holds one row per cell and budget with the same labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from valbench.results import budgets_frame, cells_frame, load_records
from valbench.stats import area_summary, near_best_lines, verdict, verdict_tables


def _mean_se(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {se:.3f}"


def summary_table(records: list[dict]) -> pd.DataFrame:
    """Rows (dataset, method); columns: accuracy at each budget and on all data, the subset-value area,
    mislabel AUC and 2-means F1, median fit seconds, failed cells."""
    cells = cells_frame(records)
    ok = cells[cells.status == "ok"]
    budgets = budgets_frame(records)
    keys = ["setting", "method"]
    table = budgets.pivot_table(index=keys, columns="budget", values="accuracy", aggfunc=_mean_se)
    table.columns = [f"acc@{b:g}" for b in table.columns]
    by_cell = ok.groupby(keys)
    table = table.join(by_cell.full_accuracy.apply(_mean_se).rename("acc@full"), how="outer")
    if not budgets.empty:
        areas = area_summary(budgets).set_index(keys)
        table = table.join((areas.area.map("{:.3f}".format) + " ± " + ((areas.high - areas.low) / 2).map(
            "{:.3f}".format)).rename("area (95% CI)"), how="outer")
    table = table.join(by_cell.mislabel_auc.apply(_mean_se).rename("mislabel AUC"), how="outer")
    table = table.join(by_cell.kmeans_f1.apply(_mean_se).rename("2-means F1"), how="outer")
    table = table.join(by_cell.wall_s.median().map("{:.2f}".format).rename("fit s (median)"), how="outer")
    failed = cells[cells.status != "ok"].groupby(keys).size().rename("failed")
    table = table.join(failed, how="outer").fillna({"failed": 0}).astype({"failed": int})
    table.index = table.index.set_names(["dataset", "method"])
    return table.astype(object).fillna("-")


def verdict_markdown(records: list[dict]) -> list[str]:
    """The verdict as markdown lines: per dataset, the best method at each budget and the cheap near-best."""
    budgets = budgets_frame(records)
    if budgets.empty:
        return []
    result = verdict(budgets, cells_frame(records))
    lines = ["## Verdict", "",
             "Best method per budget (mean test accuracy over seeds; references such as random excluded); "
             "tied: the paired difference to the best over seeds has a 95 % t interval reaching 0. "
             "Area: mean accuracy over the budget range (trapezoid).", ""]
    sentences = near_best_lines(result)
    for setting, table in verdict_tables(result).items():
        lines += [f"### {setting}", "", sentences.get(setting, ""), "", table.to_markdown(index=False), ""]
    return lines


def write_summary(run_dir: str | Path) -> str:
    """Write ``summary.md`` and ``results.csv`` into ``run_dir`` and return the markdown."""
    run_dir = Path(run_dir)
    records = load_records(run_dir)
    if not records:
        return f"no results in {run_dir}"
    cells = cells_frame(records)
    budgets_frame(records).to_csv(run_dir / "results.csv", index=False)
    lines = [f"# valbench summary: {run_dir.name}", "",
             f"{(cells.status == 'ok').sum()} cells ok, {(cells.status != 'ok').sum()} failed.", "",
             *verdict_markdown(records), "## All results", "",
             "Test accuracy of the learner retrained on the top-k subset (mean ± standard error over seeds).", "",
             summary_table(records).reset_index().to_markdown(index=False)]
    failures = cells[cells.status != "ok"]
    if len(failures):
        lines += ["", "## Failed cells", "", failures[["setting", "method", "seed", "error"]].to_markdown(index=False)]
    text = "\n".join(lines) + "\n"
    tmp = run_dir / "summary.md.tmp"
    tmp.write_text(text)
    tmp.replace(run_dir / "summary.md")
    return text
