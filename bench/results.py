"""Stored records as pandas tables (one row per cell, one per (cell, budget)) and their labels in tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

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


def _format_params(params: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={params.get(k, '-')}" for k in keys)


def _varied_keys(param_dicts: list[dict[str, Any]]) -> list[str]:
    """Parameter names whose value differs between the given dicts."""
    keys = sorted({k for d in param_dicts for k in d})
    return [k for k in keys if len({json.dumps(d.get(k), sort_keys=True, default=str) for d in param_dicts}) > 1]


def param_labeller(records: list[dict], name_field: str, params_field: str) -> Callable[[dict], str]:
    """A function record -> label: the name, plus the parameters the run varied for that name."""
    by_name: dict[str, list[dict]] = {}
    for r in records:
        by_name.setdefault(r[name_field], []).append(r.get(params_field) or {})
    varied = {name: _varied_keys(dicts) for name, dicts in by_name.items()}

    def label(record: dict) -> str:
        keys = varied[record[name_field]]
        if not keys:
            return record[name_field]
        return f"{record[name_field]} ({_format_params(record.get(params_field) or {}, keys)})"

    return label
