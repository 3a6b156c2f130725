"""Per-point values of every cell: one Parquet file per ok cell under ``<run dir>/scores/``.

A cell's scores are what users came for (which rows to keep, which look mislabelled), so a run keeps them beside
its record instead of only the metrics computed from them. Columns follow the conventions of pyDVL's
``ValuationResult.to_dataframe()``, OpenDataVal's ``save_dataval`` and cleanlab's ``get_issues()``:

``row_id``            the train row's id: its index into the dataset's pool (the rows the splits are drawn from),
                      or the value of the ``table`` dataset's ``id`` column (``Dataset.meta["train_ids"]``)
``row_id_kind``       ``pool`` where the id names the same row under every seed; ``split`` (the row's position in
                      this seed's train split) where the data is generated per seed (synthetic, gaussian, mnist1d)
``score``             the method's value (higher = more valuable); ``score_stderr`` where the method estimates it
``rank``              1 = most valuable; ties broken by the cell's seeded permutation, the same order in which the
                      harness took each budget's top k (:func:`valbench.metrics.rank_by_value`)
``in_subset_<b>``     in the subset the harness retrained on at budget ``b`` (as given: a fraction or a count)
``weight_<b>``        the method's sample weight in that subset (0 outside it), only where the method weights
``label``, ``noisy``  the train label used (after noise) and whether the harness flipped it (the truth)
``method``, ``dataset``, ``seed``, ``noise_rate``, ``params``  (the method's parameters as sorted JSON)

The worker builds the frame (:func:`scores_frame`) and hands it back inside the record; the parent writes it
(:func:`keep_scores`: temp file, then rename) *before* it appends the record, so a killed run can leave a scores
file without its record (the cell is rerun and the file replaced) but never a record without its file; a
record that names a missing file is not done (:func:`missing_scores`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from valbench.metrics import budget_sizes, rank_by_value, select_subset
from valbench.protocol import DataError, Dataset, Valuation

SCORES_DIR = "scores"
FRAME_KEY = "_scores"  # where the worker's record carries the frame to the parent (never stored in the record)
RECORD_FIELD = "scores_file"  # the record's path of its scores file, relative to the run directory


def budget_label(budget: float) -> str:
    """A budget as it names its columns: ``0.1`` -> ``0.1``, ``50.0`` -> ``50``."""
    return f"{float(budget):g}"


def scores_frame(data: Dataset, valuation: Valuation, budgets: Sequence[float], *, method: str, seed: int,
                 noise_rate: float, params: dict[str, Any]) -> pd.DataFrame:
    """One row per train point of ``data``: its id, value, rank, subset membership and weight per budget."""
    n = data.n_train
    order = rank_by_value(valuation.scores, seed)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    pooled = "train_ids" in data.meta and not data.meta.get("pool_per_seed")
    columns: dict[str, Any] = {"row_id": np.asarray(data.meta["train_ids"]) if pooled else np.arange(n),
                               "row_id_kind": "pool" if pooled else "split",
                               "score": np.asarray(valuation.scores, dtype=np.float64), "rank": rank}
    if valuation.stderr is not None:
        columns["score_stderr"] = np.asarray(valuation.stderr, dtype=np.float64)
    for budget, k in zip(budgets, budget_sizes(budgets, n, data.name)):
        chosen = select_subset(valuation, k, seed)
        member = np.zeros(n, dtype=bool)
        member[chosen] = True
        columns[f"in_subset_{budget_label(budget)}"] = member
        weights = (valuation.weights or {}).get(k)
        if weights is not None:
            weight = np.zeros(n, dtype=np.float64)
            weight[chosen] = weights
            columns[f"weight_{budget_label(budget)}"] = weight
    columns.update(label=data.y_train, noisy=np.asarray(data.noisy_mask, dtype=bool))
    frame = pd.DataFrame(columns)
    return frame.assign(method=method, dataset=data.name, seed=int(seed), noise_rate=float(noise_rate),
                        params=params_text(params))


def params_text(params: dict[str, Any] | None) -> str:
    """A cell's method parameters as the scores files' ``params`` column spells them (sorted-key JSON): the
    one spelling the report matches entries by."""
    return json.dumps(params or {}, sort_keys=True, default=str)


def scores_path(run_dir: str | Path, key: str) -> Path:
    """``<run dir>/scores/<key>.parquet``, the key reduced to characters safe in a file name."""
    return Path(run_dir) / SCORES_DIR / f"{re.sub(r'[^A-Za-z0-9._-]', '_', key)}.parquet"


def write_scores(run_dir: str | Path, key: str, frame: pd.DataFrame) -> Path:
    """Write ``frame`` to the cell's scores file atomically: a temporary file in the same folder, then rename."""
    path = scores_path(run_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def keep_scores(run_dir: str | Path, record: dict[str, Any], enabled: bool = True) -> dict[str, Any]:
    """Take the worker's scores frame out of ``record``; write it first (when ``enabled``) and name it in the
    record, which the caller then appends. Call this before every append of a record."""
    frame = record.pop(FRAME_KEY, None)
    if frame is not None and enabled:
        record[RECORD_FIELD] = str(write_scores(run_dir, record["key"], frame).relative_to(run_dir))
    return record


def missing_scores(run_dir: str | Path, records: Iterable[dict[str, Any]]) -> set[str]:
    """Keys of records that name a scores file that is not there (deleted, or a copy without ``scores/``):
    such a cell is not done, and a rerun writes both again."""
    return {r["key"] for r in records if r.get(RECORD_FIELD) and not (Path(run_dir) / r[RECORD_FIELD]).is_file()}


def read_scores(run_dir: str | Path, methods: Sequence[str] = (), datasets: Sequence[str] = ()) -> pd.DataFrame:
    """Every stored scores file of a run whose record is in ``results.jsonl``, concatenated (the last record
    per cell wins), optionally only for some methods and datasets; one row per (cell, train point)."""
    from valbench.store import ResultsStore

    run_dir = Path(run_dir)
    if not (run_dir / "results.jsonl").is_file():
        raise DataError(f"{run_dir} is not a run directory (no results.jsonl)")
    records = [r for r in ResultsStore(run_dir).records() if r.get(RECORD_FIELD)
               and (not methods or r["method"] in methods) and (not datasets or r["dataset"] in datasets)]
    present = [r for r in records if (run_dir / r[RECORD_FIELD]).is_file()]
    if not present:
        which = f" for {', '.join([*methods, *datasets])}" if methods or datasets else ""
        raise DataError(f"{run_dir}: no scores stored{which} (runs keep them unless started with --no-scores)")
    return pd.concat([pd.read_parquet(run_dir / r[RECORD_FIELD]) for r in present], ignore_index=True)
