"""Stored records as pandas tables: one row per cell, and one row per (cell, budget).

Both tables label cells with :class:`valbench.report.labels.Labels`: ``setting`` (dataset, its varied parameters and,
where the run had several, the noise rate) and ``method`` (the method with its varied parameters), beside
the raw ``dataset`` and ``method_name``. Everything downstream groups by ``(setting, method)``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from valbench.report.labels import Labels
from valbench.store import ResultsStore

CELL_COLUMNS = ["key", "setting", "regime", "method", "family", "dataset", "method_name", "seed", "noise_rate", "status",
                "error", "n_train", "full_accuracy", "full_loss", "mislabel_auc", "kmeans_f1", "wall_s", "cpu_s",
                "peak_rss_mb", "utility_evals"]
BUDGET_COLUMNS = ["setting", "regime", "method", "family", "dataset", "method_name", "method_params", "seed", "noise_rate",
                  "n_train", "full_accuracy", "budget", "fraction", "k", "accuracy", "loss", "noisy_selected"]


def load_records(run_dir: str | Path) -> list[dict]:
    return ResultsStore(run_dir).records()


def _identity(record: dict, labels: Labels) -> dict:
    return {"setting": labels.setting(record), "regime": labels.regime(record), "method": labels.method(record), "family": labels.family(record),
            "dataset": record["dataset"], "method_name": record["method"]}


def cells_frame(records: list[dict]) -> pd.DataFrame:
    """One row per cell (ok or failed) with its labels and scalar metrics."""
    labels = Labels(records)
    rows = [{**{c: r.get(c) for c in CELL_COLUMNS}, **_identity(r, labels)} for r in records]
    frame = pd.DataFrame(rows, columns=CELL_COLUMNS)
    return frame.astype({"mislabel_auc": float, "kmeans_f1": float, "wall_s": float, "full_accuracy": float})


def budgets_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (successful cell, budget): subset accuracy and loss next to the cell's labels.

    ``fraction`` is the budget as a fraction of the train split (a budget given in points is divided by it).
    """
    labels = Labels(records)
    rows = [{**_identity(r, labels), "method_params": _params_text(r.get("method_params")), "seed": r["seed"],
             "noise_rate": r["noise_rate"], "n_train": r["n_train"], "full_accuracy": r["full_accuracy"], **b,
             "fraction": b["budget"] if b["budget"] <= 1 else b["k"] / r["n_train"]}
            for r in records if r.get("status") == "ok" for b in r["budgets"]]
    frame = pd.DataFrame(rows, columns=BUDGET_COLUMNS)
    return frame.astype({"accuracy": float, "fraction": float})


def _params_text(params: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
