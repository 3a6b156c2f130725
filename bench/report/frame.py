"""A run's records as tidy frames, built once: every table, figure and verdict of the report reads these.

:func:`load_run` reads ``results.jsonl`` and ``config.json`` and returns :class:`RunFrames`:

* ``cells``: one row per cell (ok or not) with its labels (:class:`valbench.report.labels.Labels`: ``setting``,
  ``regime``, ``method``, ``family``), scalar metrics, cost in learner fits and provenance;
* ``budgets``: one row per (ok cell, budget) with ``accuracy``, ``balanced_accuracy`` and ``score``, the value of
  the setting's judged metric (:func:`valbench.metrics.judged_metric`), beside the constant majority-class
  predictor's score on the same metric (``constant``);
* ``removal`` and ``detection``: the point-removal and mislabel-detection curves;
* ``grid``: the cells the config asks for against those recorded, by status (:class:`GridStatus`).

One fixed sort, applied here only: dataset in config order, its parameters, noise rate, learner, then method
label and seed. Every output lists settings and methods in this order, so no output can differ from another
by the order of its rows (the old reason two outputs named different winners on a tie).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from valbench.metrics import judged_metric
from valbench.protocol import DataError
from valbench.report.labels import Labels, learner_name
from valbench.store import ResultsStore

OK, OVER_CAP, FAILED, TIMEOUT, NOT_RUN = "ok", "over cap", "failed", "timeout", "not run"
STATUSES = (OK, OVER_CAP, FAILED, TIMEOUT, NOT_RUN)  # valbench.runner's statuses, and the cells never recorded
METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}


def load_records(run_dir: str | Path) -> list[dict]:
    """Every complete record of ``results.jsonl`` (the last one per cell key)."""
    return ResultsStore(run_dir).records()


@dataclass(frozen=True)
class GridStatus:
    """Cells by status against the grid the config asks for; ``expected`` is None when no config says."""

    counts: dict[str, int]  # status -> cells, NOT_RUN included (0 without a config)
    expected: int | None
    expected_seeds: int | None  # seeds per (setting, method) the config asks for
    note: str  # the config's own "partial" note, if any
    missing: dict[tuple[str, float], int] = field(default_factory=dict)  # (dataset, noise rate) -> cells not run
    superseded: int = 0  # records of a grid cell that a later record of the same cell (newer code) replaced

    @property
    def partial(self) -> bool:
        """Cells the config asks for were never recorded."""
        return self.counts.get(NOT_RUN, 0) > 0

    @property
    def kind(self) -> str:
        """"partial run", "complete run", or "" when the grid is unknown."""
        return "" if self.expected is None else ("partial run" if self.partial else "complete run")

    def line(self) -> str:
        """One line for the top of every output: "partial run: ..." or "complete run: ...", counts by status."""
        recorded = sum(n for s, n in self.counts.items() if s != NOT_RUN)
        shown = (OK,) if self.expected is None else (OK, NOT_RUN)
        counts = ", ".join(f"{n} {s}" for s, n in self.counts.items() if (n or s in shown)
                           and (s != NOT_RUN or self.expected is not None))
        if self.expected is None:
            return f"{recorded} cells recorded ({counts}); cells not run cannot be counted without the grid"
        older = ""
        if self.superseded == 1:
            older = "; 1 earlier record of a rerun cell is kept in results.jsonl but not shown"
        elif self.superseded:
            older = f"; {self.superseded} earlier records of rerun cells are kept in results.jsonl but not shown"
        return (f"{self.kind}: {recorded} of the {self.expected} cells the config asks for were recorded "
                f"({counts}){older}")


@dataclass(frozen=True)
class RunFrames:
    """Everything the report reads, built once by :func:`load_run`."""

    run_dir: Path
    config: dict | None
    config_text: str | None
    cells: pd.DataFrame
    budgets: pd.DataFrame
    removal: pd.DataFrame
    detection: pd.DataFrame
    grid: GridStatus
    metrics: dict[str, str]  # setting -> the metric it is judged on ("accuracy" / "balanced_accuracy")
    metric_notes: dict[str, str]  # setting -> why its metric could not be what the data calls for, if so
    derived: int = 0  # ok cells whose class shares and constant-predictor scores were derived from the data here


# ---------------------------------------------------------------------------------------------------- cells

def _natural(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _params_text(params: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((params or {}).items()))


def _cost_fits(record: dict) -> float:
    """The method's fit CPU seconds in full-data learner fits (random: 0); NaN where the run did not time a fit."""
    if record["method"] == "random":
        return 0.0
    cpu, fit = _number(record.get("cpu_s")), _number(record.get("learner_fit_cpu_s"))
    return cpu / fit if fit > 0 and not math.isnan(cpu) else math.nan


CELL_COLUMNS = ["key", "setting", "regime", "method", "family", "dataset", "method_name", "method_params", "learner",
                "seed", "noise_rate", "status", "error", "traceback", "n_train", "n_noisy", "full_accuracy",
                "full_balanced_accuracy", "majority_share", "constant_accuracy", "constant_balanced_accuracy",
                "mislabel_auc", "kmeans_f1", "wall_s", "cpu_s", "cost_fits", "peak_rss_mb", "utility_evals", "commit",
                "dirty", "sort_key", "record"]


def label_cells(records: list[dict], config: dict | None = None) -> pd.DataFrame:
    """One row per cell with its labels, metrics, cost and provenance, in the report's one fixed order."""
    labels = Labels(records)
    order = {name: i for i, name in enumerate((config or {}).get("datasets") or [])}
    rows = []
    for r in records:
        params = r.get("dataset_params") or {}
        shares = r.get("train_class_shares")
        rows.append({
            "key": r.get("key"), "setting": labels.setting(r), "regime": labels.regime(r), "method": labels.method(r),
            "family": labels.family(r), "dataset": r["dataset"], "method_name": r["method"],
            "method_params": _params_text(r.get("method_params")), "learner": learner_name(r),
            "seed": r.get("seed"), "noise_rate": r.get("noise_rate"), "status": r.get("status"),
            "error": r.get("error"), "traceback": r.get("traceback"), "n_train": r.get("n_train"),
            "n_noisy": r.get("n_noisy"), "full_accuracy": r.get("full_accuracy"),
            "full_balanced_accuracy": r.get("full_balanced_accuracy"),
            "majority_share": max(shares) if shares else None, "constant_accuracy": r.get("constant_accuracy"),
            "constant_balanced_accuracy": r.get("constant_balanced_accuracy"),
            "mislabel_auc": r.get("mislabel_auc"), "kmeans_f1": r.get("kmeans_f1"), "wall_s": r.get("wall_s"),
            "cpu_s": r.get("cpu_s"), "cost_fits": _cost_fits(r), "peak_rss_mb": r.get("peak_rss_mb"),
            "utility_evals": r.get("utility_evals"), "commit": r.get("commit"), "dirty": r.get("dirty"),
            "sort_key": (order.get(r["dataset"], len(order)), r["dataset"],
                         tuple(_natural(params[k]) for k in sorted(params)), r.get("noise_rate") or 0.0,
                         learner_name(r)),
            "record": r,
        })
    frame = pd.DataFrame(rows, columns=CELL_COLUMNS)
    if frame.empty:
        return frame
    frame = frame.sort_values(["sort_key", "method", "seed"], kind="stable",
                              key=lambda s: s if s.name in ("sort_key", "seed") else s.map(str))
    for column in ("full_accuracy", "full_balanced_accuracy", "majority_share", "constant_accuracy",
                   "constant_balanced_accuracy", "mislabel_auc", "kmeans_f1", "wall_s", "cpu_s", "cost_fits",
                   "peak_rss_mb"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame.reset_index(drop=True)


def judged_metrics(cells: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """Per setting the metric it is judged on, and a note where the records cannot give the right one.

    The train split's majority share decides (:func:`valbench.metrics.judged_metric`), the largest over the
    dataset's cells at every noise rate: the clean labels' share (flipping labels only evens the classes out), so
    one dataset is judged on one metric in every regime, also for records that stored their noisy shares. Records
    written before balanced accuracy existed lack the shares, so their settings are judged on accuracy, with a
    note saying so.
    """
    metrics, notes = {}, {}
    ok = cells[cells.status == OK]
    dataset_share = ok.groupby("dataset").majority_share.max()
    for setting, here in ok.groupby("setting", sort=False):
        share = dataset_share[here.dataset.iloc[0]]
        if math.isnan(share):
            metrics[setting] = "accuracy"
            notes[setting] = NO_SHARES
            continue
        metrics[setting] = judged_metric([share])
        if metrics[setting] == "balanced_accuracy" and here.full_balanced_accuracy.isna().any():
            metrics[setting] = "accuracy"
            notes[setting] = NO_BALANCED
    return metrics, notes


NO_SHARES = "class shares not recorded and the data not loadable here: judged on accuracy, no constant-predictor check"
NO_BALANCED = ("imbalanced (majority share above valbench.metrics.IMBALANCE_SHARE) but balanced accuracy not recorded "
               "(cells of an older run; rerun them): judged on accuracy")


def derive_class_balance(records: list[dict]) -> tuple[list[dict], int]:
    """Older records lack the train class shares and the constant predictor's scores: derive them from the data.

    Each (dataset, parameters, seed, noise rate) of an ok record without them is loaded once, as the runner loads
    a cell's data, and :func:`valbench.metrics.class_balance` fills the fields of a copy of its records. Where a
    dataset cannot be loaded here (files absent, a plugin not installed) its records stay as they are. Returns
    the records and how many were filled.
    """
    def key(r: dict) -> str:
        return json.dumps([r["dataset"], r.get("dataset_params") or {}, r["seed"], r.get("noise_rate") or 0.0],
                          sort_keys=True, default=str)

    missing = {key(r) for r in records if r.get("status") == OK and r.get("train_class_shares") is None}
    if not missing:
        return records, 0
    from valbench.datasets.noise import inject_noise
    from valbench.metrics import class_balance
    from valbench.registry import get_dataset, load_installed

    load_installed()
    found: dict[str, dict] = {}
    for r in records:
        k = key(r)
        if k in missing and k not in found:
            try:
                data = get_dataset(r["dataset"])(seed=r["seed"], **(r.get("dataset_params") or {}))
                found[k] = class_balance(inject_noise(data, r.get("noise_rate") or 0.0, seed=r["seed"]))
            except Exception:  # noqa: BLE001 - absent files or plugins: the record stays "not recorded"
                found[k] = {}
    out, filled = [], 0
    for r in records:
        balance = found.get(key(r)) if r.get("status") == OK and r.get("train_class_shares") is None else None
        if balance:
            r = {**r, **balance}
            filled += 1
        out.append(r)
    return out, filled


# ---------------------------------------------------------------------------------------------------- rows

BUDGET_COLUMNS = ["setting", "regime", "method", "family", "dataset", "method_name", "method_params", "learner",
                  "seed", "noise_rate", "n_train", "full_accuracy", "budget", "fraction", "k", "accuracy",
                  "balanced_accuracy", "loss", "noisy_selected", "metric", "score", "constant"]


def budget_rows(cells: pd.DataFrame, metrics: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (ok cell, budget): the budget as a fraction of the train split, both accuracies, and
    ``score``, the value of the setting's judged metric (accuracy where ``metrics`` does not say)."""
    rows = []
    for cell in cells[cells.status == OK].itertuples():
        metric = (metrics or {}).get(cell.setting, "accuracy")
        constant = cell.constant_balanced_accuracy if metric == "balanced_accuracy" else cell.constant_accuracy
        for b in cell.record.get("budgets") or []:
            fraction = b["budget"] if b["budget"] <= 1 else b["k"] / cell.n_train
            rows.append({"setting": cell.setting, "regime": cell.regime, "method": cell.method, "family": cell.family,
                         "dataset": cell.dataset, "method_name": cell.method_name,
                         "method_params": cell.method_params, "learner": cell.learner, "seed": cell.seed,
                         "noise_rate": cell.noise_rate, "n_train": cell.n_train, "full_accuracy": cell.full_accuracy,
                         "budget": b["budget"], "fraction": fraction, "k": b.get("k"), "accuracy": b.get("accuracy"),
                         "balanced_accuracy": b.get("balanced_accuracy"), "loss": b.get("loss"),
                         "noisy_selected": b.get("noisy_selected"), "metric": metric, "score": b.get(metric),
                         "constant": constant})
    frame = pd.DataFrame(rows, columns=BUDGET_COLUMNS)
    return frame.astype({c: float for c in ("accuracy", "balanced_accuracy", "fraction", "score", "constant")})


def detection_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (successful cell with flipped labels, inspected fraction)."""
    rows = []
    for cell in cells[cells.status == OK].itertuples():
        curve = cell.record.get("detection_curve")
        if not curve:
            continue
        n_noisy = cell.n_noisy if cell.n_noisy is not None and not pd.isna(cell.n_noisy) else None
        noisy_fraction = n_noisy / cell.n_train if n_noisy and cell.n_train else (cell.noise_rate or 0.0)
        for inspected, found in zip(curve["inspected"], curve["found"]):
            rows.append({"setting": cell.setting, "method": cell.method, "seed": cell.seed, "inspected": inspected,
                         "found": found, "noisy_fraction": noisy_fraction})
    return pd.DataFrame(rows, columns=["setting", "method", "seed", "inspected", "found", "noisy_fraction"])


def removal_rows(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (successful cell with a removal curve, removed fraction), the full-data fit at 0 removed."""
    rows = []
    for cell in cells[cells.status == OK].itertuples():
        curve = cell.record.get("removal_curve")
        if not curve:
            continue
        points = [(0.0, cell.full_accuracy), *zip(curve["removed"], curve["accuracy"])]
        rows += [{"setting": cell.setting, "method": cell.method, "seed": cell.seed, "removed": removed,
                  "accuracy": accuracy} for removed, accuracy in points]
    return pd.DataFrame(rows, columns=["setting", "method", "seed", "removed", "accuracy"]).astype(
        {"removed": float, "accuracy": float})


# ---------------------------------------------------------------------------------------------------- grid

def _identity(dataset: str, method: str, seed: Any, noise: Any, dataset_params: dict, method_params: dict,
              varied: dict) -> tuple:
    """What makes a cell the grid's: its names, seed, noise and the parameters the config varies (defaults that
    changed between code versions must not make a recorded cell look missing)."""
    chosen = {k: method_params.get(k) for k in varied.get(method, {})}
    return (dataset, method, int(seed), float(noise), json.dumps(dataset_params or {}, sort_keys=True, default=str),
            json.dumps(chosen, sort_keys=True, default=str))


def latest_per_cell(records: list[dict], config: dict | None) -> tuple[list[dict], int]:
    """The last record of each grid cell, and how many earlier ones it replaced.

    A cell's store key covers every method parameter, defaults included, so when a method gains a parameter the
    same grid cell is run again under a new key and both records stay in ``results.jsonl``. The report shows the
    later one (the code the grid now runs): two versions of one method side by side would read as two methods.
    Records are in store order (appended as they finish), so "later" is the later line. The learner is the one the
    grid asked for (the record's ``learner``), not the parameters it was built with: a cell that failed before its
    learner was built records none, and its rerun must still replace it. Without a config there is no grid to say
    what a cell is, and every record is shown."""
    if not config:
        return records, 0
    varied = config.get("method_params") or {}
    latest: dict[tuple, dict] = {}
    for r in records:
        identity = _identity(r["dataset"], r["method"], r["seed"], r["noise_rate"], r.get("dataset_params"),
                             r.get("method_params") or {}, varied)
        latest[(json.dumps(r.get("learner") or {}, sort_keys=True, default=str), identity)] = r
    kept = list(latest.values())
    return kept, len(records) - len(kept)


def grid_status(records: list[dict], config: dict | None, superseded: int = 0) -> GridStatus:
    """Count recorded cells by status and, where ``config`` is given, the cells it asks for that never ran
    (``superseded``: records :func:`latest_per_cell` left out, said in the status line)."""
    counts = Counter({status: 0 for status in STATUSES})
    counts.update(r.get("status") for r in records)
    note = str((config or {}).get("partial") or "")
    if not config:
        return GridStatus(dict(counts), None, None, note)
    from valbench.grid import GridConfig
    from valbench.registry import load_installed, load_plugins

    try:
        load_installed()
        load_plugins(list(config.get("plugins") or []))
        expected_cells = GridConfig.from_record(config).cells()
    except Exception as err:  # noqa: BLE001 - e.g. a plugin method no longer installed: say so, count nothing
        return GridStatus(dict(counts), None, None, f"{note} (the grid could not be expanded: {err})".strip())
    varied = config.get("method_params") or {}
    recorded = {_identity(r["dataset"], r["method"], r["seed"], r["noise_rate"], r.get("dataset_params"),
                          r.get("method_params") or {}, varied) for r in records}
    expected = {_identity(c.dataset, c.method, c.seed, c.noise_rate, c.dataset_params, c.method_params, varied)
                for c in expected_cells}
    missing = expected - recorded
    counts[NOT_RUN] = len(missing)
    per_setting = Counter((dataset, noise) for dataset, _, _, noise, _, _ in missing)
    return GridStatus(dict(counts), len(expected), len(config.get("seeds") or []) or None, note, dict(per_setting),
                      superseded)


# ---------------------------------------------------------------------------------------------------- entry

def load_run(run_dir: str | Path) -> RunFrames:
    """Read a run directory once into :class:`RunFrames`; a clear error when it does not exist."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} does not exist")
    config_path = run_dir / "config.json"
    config_text = config_path.read_text() if config_path.exists() else None
    config = json.loads(config_text) if config_text else None
    records, superseded = latest_per_cell(load_records(run_dir), config)
    records, derived = derive_class_balance(records)
    cells = label_cells(records, config)
    metrics, notes = judged_metrics(cells)
    return RunFrames(run_dir=run_dir, config=config, config_text=config_text, cells=cells,
                     budgets=budget_rows(cells, metrics), removal=removal_rows(cells), detection=detection_rows(cells),
                     grid=grid_status(records, config, superseded), metrics=metrics, metric_notes=notes,
                     derived=derived)
