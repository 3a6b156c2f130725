"""Stored records as pandas tables: one row per cell, and one row per (cell, budget)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.store import ResultsStore

CELL_COLUMNS = ["key", "dataset", "method", "seed", "noise_rate", "status", "error", "n_train",
                "full_accuracy", "full_loss", "mislabel_auc", "wall_s", "cpu_s", "peak_rss_mb", "utility_evals"]


def load_records(run_dir: str | Path) -> list[dict]:
    return ResultsStore(run_dir).records()


def cells_frame(records: list[dict]) -> pd.DataFrame:
    """One row per cell (ok or failed) with its scalar metrics."""
    frame = pd.DataFrame([{c: r.get(c) for c in CELL_COLUMNS} for r in records], columns=CELL_COLUMNS)
    return frame.astype({"mislabel_auc": float, "wall_s": float, "full_accuracy": float})


def budgets_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (successful cell, budget): subset accuracy and loss next to the cell's identity."""
    rows = [{"dataset": r["dataset"], "method": r["method"], "seed": r["seed"], "noise_rate": r["noise_rate"],
             "n_train": r["n_train"], "full_accuracy": r["full_accuracy"], **b}
            for r in records if r.get("status") == "ok" for b in r["budgets"]]
    return pd.DataFrame(rows, columns=["dataset", "method", "seed", "noise_rate", "n_train", "full_accuracy",
                                       "budget", "k", "accuracy", "loss", "noisy_selected"])
