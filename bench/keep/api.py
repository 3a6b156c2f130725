"""``valbench.select(x, y, budget)``: measure the candidate methods on the user's data, recommend one, apply it.

The steps, each in its own module: estimate the label noise (:mod:`~valbench.keep.noise`), choose the candidates
whose cost fits the data's size (:mod:`~valbench.keep.candidates`), measure them with the harness
(:mod:`~valbench.keep.measure`), recommend by the verdict's rule (:mod:`~valbench.keep.recommend`), refit the
recommended method and a label-error detector on all rows (:mod:`~valbench.keep.apply`), and write the table and a
short page (:mod:`~valbench.keep.page`). Every argument is checked before any work starts.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from valbench.cache import array_digest
from valbench.datasets.splits import split_sizes, standardise
from valbench.keep.apply import fit_values, validation_size, values_table
from valbench.keep.candidates import CAP_FITS, DETECTORS, MAX_FITS, MEMORY_LIMIT_MB, Candidate, choose_candidates
from valbench.keep.measure import detection_evidence, evidence, measurement_cells, run_measurement
from valbench.keep.noise import estimate_noise
from valbench.keep.recommend import recommend
from valbench.keep.selection import Selection
from valbench.measure import measure
from valbench.metrics import judged_metric
from valbench.protocol import DataError
from valbench.registry import load_installed

MIN_SEEDS = 3
MIN_CHECK_RATE = 0.02  # --check-detection flips at least this share, so that there is something to detect
DEFAULT_DETECTOR = "cleanlab"


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def check_inputs(x: Any, y: Any, budget: float, ids: Any, seeds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             np.ndarray]:
    """Features as float64, labels as codes 0..C-1 with their class names, ids; refuse bad input in one line."""
    x = np.asarray(x)
    if x.ndim != 2 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"x must be a 2-D numeric array (rows x features), got shape {x.shape} of {x.dtype}")
    x = x.astype(np.float64)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"y must hold one label per row of x ({len(x)}), got shape {y.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"x has {int((~np.isfinite(x)).any(axis=1).sum())} rows with NaN or inf; drop or fill them "
                        "(the CLI: --drop-nonfinite)")
    classes, codes = np.unique(y, return_inverse=True)
    counts = np.bincount(codes)
    if len(classes) < 2:
        raise DataError(f"y has one class only ({classes.tolist()}); selection needs at least two")
    if counts.min() < 5:
        rare = classes[counts < 5].tolist()[:5]
        raise DataError(f"class(es) {rare} have fewer than 5 rows; stratified splits and 5 folds need 5 per class: "
                        "drop or merge them")
    budget = float(budget)
    if not np.isfinite(budget) or budget <= 0 or (budget > 1 and not budget.is_integer()) or budget > len(y):
        raise DataError(f"budget {budget:g} is invalid: give a fraction of the rows in (0, 1] or a whole count "
                        f"of rows up to {len(y)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < MIN_SEEDS:
        raise DataError(f"seeds={seeds!r}: give a whole number >= {MIN_SEEDS} (paired intervals need them)")
    ids = np.arange(len(y)) if ids is None else np.asarray(ids)
    if ids.shape != (len(y),) or len(pd.unique(ids)) != len(ids):
        raise DataError(f"ids must hold one unique value per row ({len(y)}), got {len(pd.unique(ids))} distinct "
                        f"of shape {ids.shape}")
    return x, codes.astype(np.int64), classes, ids


def select(x: Any, y: Any, budget: float, *, ids: Sequence[Any] | None = None, id_name: str = "row",
           methods: list[str] | None = None, seeds: int = MIN_SEEDS, check_detection: bool = False,
           out: str | Path | None = None, jobs: int = 1, backend: str = "local", scheduler: str | None = None,
           max_fits: float = MAX_FITS, memory_limit_mb: float | None = MEMORY_LIMIT_MB,
           progress: bool = True) -> Selection:
    """Which rows of ``(x, y)`` to keep at ``budget`` (a fraction of the rows, or a count), and which look
    mislabelled: measured on this data, with the evidence.

    ``methods``: the candidates (default: the real grid's scalable methods whose predicted cost is at most
    ``max_fits`` learner fits; random always); ``seeds``: stratified splits measured (>= 3);
    ``check_detection``: also flip labels at the estimated noise rate and rank the detectors by ROC-AUC (the
    best then flags the label issues; else cleanlab does); ``out``: the folder for the work (resumable) and the
    outputs (default: a temporary folder); ``backend="dask"`` runs the measurement's cells on a dask cluster;
    ``memory_limit_mb``: a measured cell whose worker grows past it fails alone (None: no limit).
    """
    load_installed()
    x, codes, classes, ids = check_inputs(x, y, budget, ids, seeds)
    n_rows, n_classes = len(codes), len(classes)
    fraction = budget if budget <= 1 else budget / n_rows
    n_valid = validation_size(n_rows, n_classes)
    n_train = split_sizes("table", n_rows, None, n_valid, None)[0]  # the measurement's train split
    candidates, left_out = choose_candidates(n_train, methods, max_fits)
    if backend not in ("local", "dask"):
        raise DataError(f"backend {backend!r}: give 'local' or 'dask'")
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="valbench-select-"))
    work = out_dir / "measure"
    work.mkdir(parents=True, exist_ok=True)
    # named by content: a rerun in the same folder resumes on the same data, and never reuses cells of other data
    data_path = work / f"data-{array_digest(x, codes)[:12]}.npz"
    if not data_path.exists():
        np.savez(data_path, x=x, y=codes)
    timings: dict[str, dict[str, float]] = {}

    def step(name: str, text: str, fn):
        _say(progress, text)
        result, cost = measure(fn)
        timings[name] = {"wall_s": cost.wall_s, "cpu_s": cost.cpu_s, "peak_rss_mb": cost.peak_rss_mb}
        return result

    noise = step("noise", f"[1/4] label noise: confident learning, 5 folds, {n_rows:,} rows",
                 lambda: estimate_noise(standardise(x)[0], codes, n_classes))
    _say(progress, f"      {noise.sentence()}")
    metric = judged_metric(np.bincount(codes) / n_rows)
    cells = measurement_cells(data_path, candidates, fraction, list(range(seeds)), n_valid)
    records = step("measure", f"[2/4] measuring {len(candidates)} candidates x {seeds} seeds ({len(cells)} cells) "
                              f"on {metric.replace('_', ' ')}", lambda: run_measurement(
                                  work / "run", cells, jobs, backend, scheduler, progress, CAP_FITS, memory_limit_mb))
    table = evidence(records, cells, metric)
    recommendation = recommend(table, metric)
    detection, detector = None, Candidate(DEFAULT_DETECTOR)
    if check_detection:
        rate = max(noise.rate, MIN_CHECK_RATE)
        flipped = measurement_cells(data_path, [Candidate(d) for d in DETECTORS], fraction, list(range(seeds)),
                                    n_valid, noise_rate=round(rate, 3))
        detection = detection_evidence(step("check_detection", f"      detectors on {rate:.1%} flipped labels", lambda:
                                            run_measurement(work / "run", flipped, jobs, backend, scheduler,
                                                            progress, CAP_FITS, memory_limit_mb)), flipped)
        detector = Candidate(str(detection.detector.iloc[0]))
    applied = next(c for c in candidates if c.label == recommendation.apply)
    values, flags = step("refit", f"[3/4] refitting {applied.label} and {detector.label} on all rows", lambda: (
        fit_values(x, codes, n_classes, applied, budget),
        fit_values(x, codes, n_classes, detector, budget)))
    rows = values_table(n_rows, values, budget, flags, noise.rate)
    rows.insert(0, id_name, ids)
    rows.insert(1, "label", classes[codes])
    budget_text = f"{budget:g} of the rows" if budget <= 1 else f"{int(budget)} rows"
    rule = (f"{detector.label} scores every valued row (higher = cleaner); label_issue marks the "
            f"{int(rows.label_issue.sum())} lowest-scored (the estimated noise rate {noise.rate:.1%} of them)"
            + ("" if detection is None else f"; chosen as the best detector by ROC-AUC on labels flipped at "
                                            f"{max(noise.rate, MIN_CHECK_RATE):.1%}"))
    selection = Selection(recommended=recommendation.apply, evidence=table, values=rows, noise=noise,
                          recommendation=recommendation, metric=metric, budget_text=budget_text,
                          detector=detector.label, detection_rule=rule, detection=detection, left_out=left_out,
                          timings=timings)
    step("write", "[4/4] writing the table and the page", lambda: write_outputs(selection, out_dir))
    return selection


def write_outputs(selection: Selection, out_dir: Path) -> None:
    """``values.csv`` (one row per input row), ``evidence.csv`` and ``index.html`` with its figure."""
    from valbench.keep.page import write_page

    selection.paths["values"] = str(out_dir / "values.csv")
    selection.values.to_csv(out_dir / "values.csv", index=False)
    selection.evidence.to_csv(out_dir / "evidence.csv", index=False)
    selection.paths["evidence"] = str(out_dir / "evidence.csv")
    selection.paths["page"] = str(write_page(selection, out_dir))
