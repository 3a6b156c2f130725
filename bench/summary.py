"""The plain summary of a run: a markdown table of subset value, mislabel AUC and cost per dataset and method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import budgets_frame, cells_frame, load_records, param_labeller


def _mean_se(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "-"
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {se:.3f}"


def summary_table(records: list[dict]) -> pd.DataFrame:
    """Rows (dataset, method); columns: accuracy at each budget, full-data accuracy, AUC, seconds, failures.

    A dataset or method whose parameters the run varied gets a row per setting, labelled with them.
    """
    dataset_label = param_labeller(records, "dataset", "dataset_params")
    method_label = param_labeller(records, "method", "method_params")
    records = [{**r, "dataset": dataset_label(r), "method": method_label(r)} for r in records]
    cells = cells_frame(records)
    ok = cells[cells.status == "ok"]
    budgets = budgets_frame(records)
    table = budgets.pivot_table(index=["dataset", "method"], columns="budget", values="accuracy",
                                aggfunc=_mean_se)
    table.columns = [f"acc@{b:g}" for b in table.columns]
    by_cell = ok.groupby(["dataset", "method"])
    table = table.join(by_cell.full_accuracy.apply(_mean_se).rename("acc@full"), how="outer")
    table = table.join(by_cell.mislabel_auc.apply(_mean_se).rename("mislabel AUC"), how="outer")
    table = table.join(by_cell.wall_s.median().map("{:.2f}".format).rename("fit s (median)"), how="outer")
    failed = cells[cells.status != "ok"].groupby(["dataset", "method"]).size().rename("failed")
    table = table.join(failed, how="outer").fillna({"failed": 0}).astype({"failed": int})
    return table.astype(object).fillna("-")


def write_summary(run_dir: str | Path) -> str:
    """Write ``summary.md`` and ``results.csv`` into ``run_dir`` and return the markdown."""
    run_dir = Path(run_dir)
    records = load_records(run_dir)
    if not records:
        return f"no results in {run_dir}"
    cells = cells_frame(records)
    budgets_frame(records).to_csv(run_dir / "results.csv", index=False)
    lines = [f"# valbench summary: {run_dir.name}", "",
             f"{(cells.status == 'ok').sum()} cells ok, {(cells.status != 'ok').sum()} failed. "
             "Test accuracy of the learner retrained on the top-k subset (mean ± standard error over seeds).",
             "", summary_table(records).reset_index().to_markdown(index=False)]
    failures = cells[cells.status != "ok"]
    if len(failures):
        lines += ["", "## Failed cells", "", failures[["dataset", "method", "seed", "error"]].to_markdown(index=False)]
    text = "\n".join(lines) + "\n"
    tmp = run_dir / "summary.md.tmp"
    tmp.write_text(text)
    tmp.replace(run_dir / "summary.md")
    return text
