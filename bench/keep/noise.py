"""How noisy do the labels look? Confident learning's estimate of the share of wrong labels, with its spread.

Out-of-fold probabilities come from the suite's learner cross-fitted over stratified folds (each row's
probabilities from the model that did not see it: :func:`valbench.learners.out_of_fold_probabilities`,
the same as the ``cleanlab`` method's). cleanlab's ``estimate_joint`` turns labels and probabilities into the joint
distribution of given and true labels (calibrated confident joint, Northcutt et al. 2021, eq. 3); the noise rate
is its off-diagonal mass, ``1 - trace(Q)``. The point estimate uses every row; the interval is Student's t over
the same estimate computed on each fold's held-out rows alone (how much it moves with the rows it sees).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from valbench.learners import make_learner
from valbench.learners import out_of_fold_probabilities
from valbench.report.stats import mean_ci


@dataclass(frozen=True)
class NoiseEstimate:
    """The estimated share of wrong labels, the t interval over folds, and each fold's estimate."""

    rate: float
    low: float
    high: float
    per_fold: tuple[float, ...]

    def sentence(self) -> str:
        return (f"about {self.rate:.1%} of the labels look wrong (confident learning, out-of-fold; "
                f"{len(self.per_fold)} folds: {self.low:.1%} to {self.high:.1%})")


def off_diagonal_mass(labels: np.ndarray, probs: np.ndarray) -> float:
    """cleanlab's estimated share of labels that differ from the true class: ``1 - trace(joint)``."""
    from cleanlab.count import estimate_joint

    joint = estimate_joint(labels, probs)
    return float(max(0.0, 1.0 - np.trace(joint)))


def estimate_noise(x: np.ndarray, y: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0) -> NoiseEstimate:
    """The noise rate of labels ``y`` (codes 0..n_classes-1) on standardised features ``x``."""
    learner = make_learner("logreg", x.shape[1], n_classes, seed=seed)
    probs = out_of_fold_probabilities(learner, x, y, n_classes, folds, seed)
    # the folds of out_of_fold_probabilities (same splitter and seed): each fold's held-out rows alone
    _, counts = np.unique(y, return_counts=True)
    per_fold = []
    if counts.min() >= folds:
        for _, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
            if len(np.unique(y[held])) == n_classes:
                per_fold.append(off_diagonal_mass(y[held], probs[held]))
    _, low, high = mean_ci(per_fold) if per_fold else (np.nan, np.nan, np.nan)
    return NoiseEstimate(rate=off_diagonal_mass(y, probs), low=max(0.0, low), high=high, per_fold=tuple(per_fold))
