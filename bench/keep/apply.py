"""Apply the recommended method to every row, and flag the likely label errors with a detector.

The refit values every row the method may value: all of them, except for the methods that value against a
validation split (:data:`valbench.keep.candidates.USES_VALIDATION`), for which a stratified 20 % of the rows
(at most :data:`MAX_VALIDATION` rows, as in the measurement) is carved out first and left unvalued (``role = "validation"``). Features
are standardised on the valued rows. The subset at the budget is the method's own (set selectors) or its top
``k`` by value, exactly as the harness measured it (:func:`valbench.values.scores_frame`).

Label issues: the detector's score (higher = cleaner) on every valued row; the rows flagged are the
``round(rate * n)`` lowest-scored ones, ``rate`` being the estimated noise rate (:mod:`valbench.keep.noise`):
as many suspects as the estimate says there are wrong labels, most suspect first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from valbench.datasets.splits import standardise, stratified_parts
from valbench.keep.candidates import Candidate
from valbench.learners import learner_for
from valbench.metrics import budget_sizes, rank_by_value
from valbench.protocol import Dataset
from valbench.registry import get_method
from valbench.streams import stream
from valbench.values import budget_label, scores_frame

VALIDATION_SHARE = 0.2
MAX_VALIDATION = 2_000  # as the real grid's 20,000-point sets: methods that read it cost in proportion to its size


def validation_size(n_rows: int, n_classes: int) -> int:
    """Rows of the validation split, in the measurement and in the refit: 20 %, at most 2,000, a row per class."""
    return int(min(max(n_classes, round(VALIDATION_SHARE * n_rows)), MAX_VALIDATION))


def valued_rows(y: np.ndarray, n_classes: int, carve: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(valued rows, validation rows): all rows valued and a stratified validation sample among them, or the
    sample carved out of them when ``carve``."""
    n_valid = validation_size(len(y), n_classes)
    valid, rest = stratified_parts(y, (n_valid, len(y) - n_valid), stream(seed, "select", "validation"))
    return (np.sort(rest) if carve else np.arange(len(y))), np.sort(valid)


def full_dataset(x: np.ndarray, y: np.ndarray, n_classes: int, carve: bool, seed: int = 0) -> Dataset:
    """Every valued row as the train split; the validation rows as valid (and test, which no method reads)."""
    train, valid = valued_rows(y, n_classes, carve, seed)
    x_train, x_valid = standardise(x[train], x[valid])
    return Dataset(name="select", x_train=x_train, y_train=y[train], x_valid=x_valid, y_valid=y[valid],
                   x_test=x_valid, y_test=y[valid], n_classes=n_classes, meta={"train_ids": train})


def fit_values(x: np.ndarray, y: np.ndarray, n_classes: int, candidate: Candidate, budget: float,
               seed: int = 0) -> pd.DataFrame:
    """The candidate's scores frame on the valued rows (``row_id`` = row position) at ``budget``."""
    data = full_dataset(x, y, n_classes, candidate.uses_validation, seed)
    cls = get_method(candidate.method)
    params = {**cls.params, **candidate.params}
    ks = budget_sizes([budget], data.n_train, "your data")
    learner = learner_for("logreg", data, seed=seed)
    valuation = cls(**params).fit(data, learner, seed, **({"budgets": ks} if cls.selects_sets else {}))
    valuation.validate(candidate.method, data.n_train, ks if cls.selects_sets else ())
    return scores_frame(data, valuation, [budget], method=candidate.label, seed=seed, noise_rate=0.0, params=params)


def values_table(n_rows: int, values: pd.DataFrame, budget: float, detector: pd.DataFrame | None,
                 rate: float) -> pd.DataFrame:
    """One row per input row: role, score, rank, selected, weight (if the method weights), and with a detector
    ``detector_score`` and ``label_issue`` (the ``round(rate * n)`` lowest detector scores)."""
    table = pd.DataFrame(index=pd.RangeIndex(n_rows))
    table["role"] = "validation"
    rows = values.row_id.to_numpy()
    table.loc[rows, "role"] = "valued"
    table["score"] = np.nan
    table.loc[rows, "score"] = values.score.to_numpy()
    table["rank"] = pd.array([pd.NA] * n_rows, dtype="Int64")
    table.loc[rows, "rank"] = values["rank"].to_numpy()
    table["selected"] = False
    table.loc[rows, "selected"] = values[f"in_subset_{budget_label(budget)}"].to_numpy()
    weight = f"weight_{budget_label(budget)}"
    if weight in values:
        table["weight"] = 0.0
        table.loc[rows, "weight"] = values[weight].to_numpy()
    if detector is not None:
        scored = detector.row_id.to_numpy()
        n_flag = int(round(rate * len(scored)))
        suspects = scored[rank_by_value(detector.score.to_numpy())[::-1][:n_flag]]
        table["detector_score"] = np.nan
        table.loc[scored, "detector_score"] = detector.score.to_numpy()
        table["label_issue"] = False
        table.loc[suspects, "label_issue"] = True
    return table
