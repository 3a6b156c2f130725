"""Detector-then-selector pipelines: a label-error detector removes its suspects, a selector picks from the rest.

The two steps a cleaning selector such as ``hostcp-fl`` fuses, done one after the other with any registered
methods, so a benchmark can tell which step earns a win:

1. ``detector`` (any registered method, or ``none``) scores every train point once, higher = cleaner;
2. ``drop`` removes its suspects: ``auto`` = the lower cluster of the exact 1-D 2-means split of the scores
   (:func:`valbench.metrics.two_means_split`, the split the 2-means F1 metric uses), or a fraction in [0, 1)
   of the train split, lowest scores first (seeded random tie-break, :func:`valbench.metrics.rank_by_value`);
3. ``selector`` (any registered method but a pipeline; ``random`` for the cleaning alone) runs on the kept
   points for every budget: a set selector's own subsets, a per-point valuation's top k. Indices map back to
   the whole train split. A budget larger than the kept points takes every kept point plus the least
   suspicious dropped ones.

The pipeline's scores are the detector's (its mislabel AUC and F1 are the detector's), or the selector's
with ``detector = none``, in which case the pipeline is exactly its selector.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from valbench.learners import Learner
from valbench.metrics import rank_by_value, select_subset, two_means_split
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import METHODS, register_method

NONE = "none"


def suspects(scores: np.ndarray, drop: str | float, seed: int) -> np.ndarray:
    """Indices the detector's ``scores`` call suspect: the lower 2-means cluster (``auto``) or a fraction."""
    scores = np.asarray(scores, dtype=np.float64)
    if drop == "auto":
        if np.ptp(scores) == 0:  # one value: no split to make
            return np.empty(0, dtype=np.int64)
        return np.sort(two_means_split(scores))
    n_drop = int(round(float(drop) * len(scores)))
    return np.sort(rank_by_value(scores, seed)[len(scores) - n_drop:])


def restrict(data: Dataset, keep: np.ndarray) -> Dataset:
    """The dataset with its train split reduced to the rows ``keep`` (valid and test splits unchanged)."""
    return Dataset(name=data.name, x_train=data.x_train[keep], y_train=data.y_train[keep], x_valid=data.x_valid,
                   y_valid=data.y_valid, x_test=data.x_test, y_test=data.y_test, n_classes=data.n_classes,
                   noisy_mask=data.noisy_mask[keep], y_train_clean=data.y_train_clean[keep], meta=dict(data.meta))


@register_method
class Pipeline(ValuationMethod):
    """A detector removes its suspects, then a selector picks each budget's subset from the rest."""

    name = "pipeline"
    family = "pipeline"
    selects_sets = True
    description = "detector-then-selector: drop the detector's suspects (2-means or a fraction), select the rest"
    params = {"detector": "enn", "selector": "facility-location", "drop": "auto"}
    param_kinds = {"drop": (str, int, float)}

    def check(self) -> dict[str, Any]:
        c = super().check()
        valid = sorted(m for m in METHODS if m != self.name)
        for role, allowed in (("detector", [NONE, *valid]), ("selector", valid)):
            if c[role] not in allowed:
                raise DataError(f"method 'pipeline': {role}={c[role]!r} is not a registered method; "
                                f"valid {role}s: {', '.join(allowed)}")
        drop = c["drop"]
        if isinstance(drop, str) and drop != "auto":
            raise DataError(f"method 'pipeline': drop={drop!r} must be 'auto' or a fraction in [0, 1)")
        if not isinstance(drop, str) and not 0 <= drop < 1:
            raise DataError(f"method 'pipeline': drop={drop!r} must be 'auto' or a fraction in [0, 1)")
        for role in ("detector", "selector"):
            if c[role] != NONE:
                METHODS[c[role]]().check()
        return c

    def prepare(self) -> None:
        for role in ("detector", "selector"):
            if self.config[role] != NONE:
                METHODS[self.config[role]]().prepare()

    def fit(self, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int] = ()) -> Valuation:
        c = self.check()
        fits_before = learner.fits
        evals = 0
        if c["detector"] == NONE:
            detected, dropped = None, np.empty(0, dtype=np.int64)
        else:
            detected = self._run(c["detector"], data, learner, seed, budgets)
            evals += detected.utility_evals or 0
            dropped = suspects(detected.scores, c["drop"], seed)
        keep = np.setdiff1d(np.arange(data.n_train), dropped)
        if len(np.unique(data.y_train[keep])) < 2:
            raise DataError(f"pipeline: the detector {c['detector']!r} left {len(keep)} points of fewer than two "
                            "classes; give a smaller drop fraction")
        kept_budgets = sorted({min(int(k), len(keep)) for k in budgets})
        selected = self._run(c["selector"], restrict(data, keep), learner, seed, kept_budgets)
        evals += selected.utility_evals or 0
        # dropped points, least suspicious first, fill budgets larger than what was kept
        fill = dropped[rank_by_value(detected.scores[dropped], seed)] if len(dropped) else dropped
        subsets = {}
        for k in budgets:
            inside = keep[select_subset(selected, min(int(k), len(keep)), seed)]
            subsets[int(k)] = np.sort(np.concatenate([inside, fill[:max(0, int(k) - len(keep))]]))
        if detected is not None:
            scores = detected.scores
        else:
            scores = selected.scores
        flipped = data.noisy_mask[dropped]
        extra = {"dropped": int(len(dropped)), "dropped_flipped_share": float(flipped.mean()) if len(dropped) else 0.0,
                 "flipped_dropped": int(flipped.sum())}
        return Valuation(scores=scores, subsets=subsets, extra=extra,
                         utility_evals=max(evals, learner.fits - fits_before))

    @staticmethod
    def _run(name: str, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int]) -> Valuation:
        cls = METHODS[name]
        method = cls()
        kwargs = {"budgets": list(budgets)} if cls.selects_sets else {}
        return method.fit(data, learner, seed, **kwargs).validate(name, data.n_train, kwargs.get("budgets", ()))
