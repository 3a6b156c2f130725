"""Confident learning through cleanlab (Northcutt, Jiang & Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 2021; the ``cleanlab`` package 2.9).

cleanlab does not train anything: it takes out-of-fold predicted probabilities from any classifier. Here
they come from the suite's own learner, K-fold cross-fitted on the (noisy) train split (stratified folds,
seeded): each point's probabilities come from the model trained on the other folds. The score is
``cleanlab.rank.get_label_quality_scores(labels, pred_probs, method=...)``, higher = cleaner:

* ``self_confidence`` (cleanlab's default): p_i[y_i];
* ``normalized_margin``: (p_i[y_i] - max_{c != y_i} p_i[c] + 1) / 2;
* ``confidence_weighted_entropy``: cleanlab's third option.

Cost: K learner fits on (K - 1)/K of the train split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from valbench.learners import Learner, out_of_fold_probabilities
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method

QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def label_quality(labels: np.ndarray, pred_probs: np.ndarray, method: str) -> np.ndarray:
    """cleanlab's label-quality score of every point (higher = more likely correctly labelled)."""
    from cleanlab.rank import get_label_quality_scores

    return np.asarray(get_label_quality_scores(labels, pred_probs, method=method), dtype=np.float64)


@register_method
class ConfidentLearning(ValuationMethod):
    """cleanlab's label-quality scores on out-of-fold probabilities of the suite's learner."""

    name = "cleanlab"
    description = "confident learning (cleanlab 2.9): label-quality score from out-of-fold probabilities"
    params = {"method": "self_confidence", "folds": 5}

    def check(self) -> dict[str, Any]:
        c = super().check()
        if c["method"] not in QUALITY_METHODS:
            raise DataError(f"method 'cleanlab': method={c['method']!r} is not one of {list(QUALITY_METHODS)}")
        if not isinstance(c["folds"], int) or c["folds"] < 2:
            raise DataError(f"method 'cleanlab': folds must be a whole number >= 2, got {c['folds']!r}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        c = self.check()
        if c["folds"] > data.n_train:
            raise DataError(f"method 'cleanlab': {c['folds']} folds for {data.n_train} train points")
        probs = out_of_fold_probabilities(learner, data.x_train, data.y_train, data.n_classes, c["folds"], seed)
        return Valuation(scores=label_quality(data.y_train, probs, c["method"]), utility_evals=c["folds"])
