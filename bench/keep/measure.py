"""Measure the candidates on the user's data with the suite's harness, and tabulate the evidence.

The data (already encoded) is the ``table`` dataset of an NPZ file in the work folder; every candidate runs on
the same stratified train/valid/test splits per seed (60/20/20, the validation split capped at 2,000 rows:
:func:`valbench.keep.apply.validation_size`), as cells of
:func:`valbench.runner.run_grid` (resumable, cached, under the real grid's cap, locally or on dask). A
candidate's value is the judged metric (:func:`valbench.metrics.judged_metric`: balanced accuracy for
imbalanced labels) of the learner retrained on its subset at the budget, on the held-out test rows; it is
paired with ``random`` per seed (same split) and summarised by the mean and Student-t interval over seeds.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valbench.grid import Cell
from valbench.keep.candidates import RANDOM, Candidate
from valbench.registry import get_method
from valbench.report.stats import mean_ci
from valbench.runner import connect_dask, run_grid
from valbench.store import ResultsStore

EVIDENCE_COLUMNS = ["label", "value", "low", "high", "vs_random", "vs_random_low", "vs_random_high", "n_seeds",
                    "cost_fits", "fit_cpu_s", "status"]


def measurement_cells(data_path: Path, candidates: list[Candidate], fraction: float, seeds: list[int],
                      n_valid: int, noise_rate: float = 0.0) -> dict[str, tuple[Cell, Candidate]]:
    """One cell per (candidate, seed) on the ``table`` dataset of ``data_path`` at one budget fraction, by key;
    ``n_valid`` validation rows, then train and test 75 / 25 % of the rest (the loader's default ratio)."""
    cells = {}
    for candidate in candidates:
        params = {**get_method(candidate.method).params, **candidate.params}
        for seed in seeds:
            cell = Cell(dataset="table", method=candidate.method, seed=int(seed), noise_rate=float(noise_rate),
                        budgets=(float(fraction),), dataset_params={"path": str(data_path), "n_valid": n_valid},
                        method_params=params)
            cells[cell.key] = (cell, candidate)
    return cells


def run_measurement(run_dir: Path, cells: dict[str, tuple[Cell, Candidate]], jobs: int = 1, backend: str = "local",
                    scheduler: str | None = None, progress: bool = True,
                    cap_fits: float | None = None, memory_limit_mb: float | None = None) -> list[dict[str, Any]]:
    """Run the cells (skipping those already stored in ``run_dir``) and return their records; a cell whose
    worker grows past ``memory_limit_mb`` is killed and recorded failed (the harness's limit)."""
    store = ResultsStore(run_dir)
    client = connect_dask(scheduler) if backend == "dask" else None
    try:
        run_grid([cell for cell, _ in cells.values()], store, jobs=-1 if client else jobs, progress=progress,
                 backend="dask" if client else "loky", cache_dir=run_dir / ".cache", cap_fits=cap_fits,
                 memory_limit_mb=memory_limit_mb)
    finally:
        if client is not None:
            client.close()
    return [r for r in store.records() if r["key"] in cells]


def _per_seed(records: list[dict[str, Any]], cells: dict[str, tuple[Cell, Candidate]], field: str) -> pd.DataFrame:
    """Rows (label, seed, status, value of ``field``, fit CPU s, cost in learner fits) of every record."""
    rows = []
    for r in records:
        candidate = cells[r["key"]][1]
        ok = r["status"] == "ok"
        source = r["budgets"][0] if ok and field in r["budgets"][0] else r  # a budget's metric, or the cell's
        value = source.get(field) if ok else np.nan
        one_fit = r.get("learner_fit_cpu_s")
        cost = 0.0 if candidate.method == RANDOM else (r["cpu_s"] / one_fit if ok and one_fit else np.nan)
        rows.append({"label": candidate.label, "seed": r["seed"], "status": r["status"],
                     "value": np.nan if value is None else float(value),
                     "fit_cpu_s": r.get("cpu_s", np.nan), "cost_fits": cost})
    return pd.DataFrame(rows, columns=["label", "seed", "status", "value", "fit_cpu_s", "cost_fits"])


def evidence(records: list[dict[str, Any]], cells: dict[str, tuple[Cell, Candidate]], metric: str) -> pd.DataFrame:
    """One row per candidate: mean ``metric`` at the budget over seeds with its interval, the mean paired
    difference to random with its interval, seeds, median cost in learner fits and fit CPU seconds, and the
    status ("ok", or the first failure: "over cap", "failed", ...). Candidates with no ok seed have no value."""
    per_seed = _per_seed(records, cells, metric)
    wide = per_seed.pivot_table(index="seed", columns="label", values="value", aggfunc="first", dropna=False)
    rows = []
    for label in dict.fromkeys(candidate.label for _, candidate in cells.values()):
        mine = per_seed[per_seed.label == label]
        ok = mine[mine.status == "ok"]
        value, low, high = mean_ci(ok.value)
        diff = (wide[label] - wide[RANDOM]).dropna() if RANDOM in wide and label in wide else pd.Series([], float)
        vs, vs_low, vs_high = mean_ci(diff)
        failures = mine.status[mine.status != "ok"]
        rows.append([label, value, low, high, vs, vs_low, vs_high, len(ok),
                     statistics.median(ok.cost_fits) if len(ok) else np.nan,
                     statistics.median(ok.fit_cpu_s) if len(ok) else np.nan,
                     "ok" if failures.empty else f"{failures.iloc[0]} ({len(failures)} of {len(mine)} seeds)"])
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)


def detection_evidence(records: list[dict[str, Any]], cells: dict[str, tuple[Cell, Candidate]]) -> pd.DataFrame:
    """One row per detector measured on flipped labels: mislabel ROC-AUC mean and interval over seeds."""
    per_seed = _per_seed(records, cells, "mislabel_auc")
    rows = []
    for label, mine in per_seed.groupby("label", sort=False):
        auc, low, high = mean_ci(mine.value[mine.status == "ok"])
        rows.append({"detector": label, "mislabel_auc": auc, "low": low, "high": high,
                     "n_seeds": int((mine.status == "ok").sum())})
    return pd.DataFrame(rows).sort_values(["mislabel_auc", "detector"], ascending=[False, True], ignore_index=True)
