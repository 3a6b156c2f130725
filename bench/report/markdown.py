"""The plain summary of a run: the verdict, then a markdown table per dataset and method (``summary.md``).

Rows are labelled by :mod:`valbench.report.labels`, so each variant of a method (``loo (utility=accuracy)``) is its
own row; ``results.csv`` holds one row per cell and budget with the same labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from valbench.report.frame import budgets_frame, cells_frame, load_records
from valbench.report.labels import Labels
from valbench.report.stats import (area_summary, attribution, attribution_table, detection_ranking, detection_table,
                            family_best_table, family_bests, near_best_lines, ordered_regimes, regime_of, verdict, verdict_tables)


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
    """The verdict as markdown lines, per regime (clean labels, each noise rate, each learner) and dataset: the
    best method at each budget, the best of each family, the cheap near-best; then where the win comes from
    (hostcp-fl vs pipelines, cleaning vs selection) and the mislabel-detection ranking of the regime."""
    budgets = budgets_frame(records)
    if budgets.empty:
        return []
    cells = cells_frame(records)
    result = verdict(budgets, cells)
    families = dict(zip(cells.method, cells.family))
    bests = family_bests(budgets, families)
    labels = Labels(records)
    attributions = {a.setting: a for a in attribution(budgets, labels.identities(records))}
    ranking = detection_ranking(cells)
    lines = ["## Verdict", "",
             "Given separately for clean labels, each noise rate and each learner. Best method per budget (mean "
             "test accuracy over seeds; references such as random excluded); tied: the paired difference to the "
             "best over seeds has a 95 % t interval reaching 0. Then the best of each family with its paired "
             "difference to the best overall, in points. Area: mean accuracy over the budget range (trapezoid).", ""]
    sentences = near_best_lines(result)
    tables = verdict_tables(result)
    regimes = regime_of(cells)
    order = ordered_regimes(regimes[s] for s in tables)
    head = "####" if len(order) > 1 else "###"  # several regimes: a heading per regime, the datasets under it
    for regime in order:
        settings = [s for s in tables if regimes[s] == regime]
        if len(order) > 1:
            lines += [f"### {regime.capitalize()}", ""]
        for setting in settings:
            lines += [f"{head} {setting}", "", sentences.get(setting, ""), "", tables[setting].to_markdown(index=False),
                      ""]
            per_family = family_best_markdown(bests[bests.setting == setting])
            if per_family:
                lines += [per_family, ""]
        here = [attributions[s] for s in settings if s in attributions]
        if here:
            lines += ["Where the win comes from (subset-value area, paired over seeds, points):", "",
                      attribution_table(here).to_markdown(index=False), ""]
        detection = detection_table(ranking[ranking.setting.isin(settings)])
        if not detection.empty:
            lines += ["Mislabel detection, AUC / 2-means F1 (rank by AUC among all methods of the run):", "",
                      detection.to_markdown(index=False), ""]
    return lines


def family_best_markdown(rows: pd.DataFrame) -> str:
    """The best of each family per budget, with its paired difference to the best overall, as a markdown table."""
    return "" if rows.empty else family_best_table(rows).to_markdown(index=False)


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
