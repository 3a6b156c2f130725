"""Edited nearest neighbours (Wilson, "Asymptotic properties of nearest neighbor rules using edited data",
IEEE Trans. SMC 1972) as a label-error score.

Wilson's editing removes a train point whose label is not the plurality label of its k nearest neighbours
(the point itself excluded). As a score, with n_c(i) the number of i's k nearest neighbours labelled c,

    score_i = n_{y_i}(i) / k  -  max_{c != y_i} n_c(i) / k        in [-1, 1],

the margin of the point's own label in its neighbourhood: higher = cleaner; Wilson's rule edits exactly the
points with score < 0 (another label outnumbers the point's own), ties (score 0) are kept. Euclidean distance
in the learner's input space; equidistant neighbours are taken in index order (a stable sort), the point
itself is never its own neighbour even where it has duplicates. Cost: one kNN query, O(n k) memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from valbench.learners import Learner
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method


def neighbour_indices(x: np.ndarray, k: int) -> np.ndarray:
    """``(n, k)``: each row's k nearest other rows (Euclidean), the row itself excluded even among duplicates."""
    n = len(x)
    if not 1 <= k < n:
        raise DataError(f"enn: k must lie in [1, {n - 1}] for {n} train points, got {k}")
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    own = idx == np.arange(n)[:, None]
    # drop the point itself where it was returned, else (duplicates crowded it out) the farthest neighbour
    own[~own.any(axis=1), -1] = True
    return idx[~own].reshape(n, k)


def enn_scores(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Wilson's neighbourhood margin of every point: share of its own label minus the largest other share."""
    y = np.asarray(y)
    labels = y[neighbour_indices(np.asarray(x, dtype=np.float64), k)]
    n_classes = int(y.max()) + 1
    counts = np.zeros((len(y), n_classes))
    np.add.at(counts, (np.repeat(np.arange(len(y)), k), labels.ravel()), 1.0)
    own = counts[np.arange(len(y)), y]
    counts[np.arange(len(y)), y] = -1.0
    return (own - counts.max(axis=1)) / k


@register_method
class EditedNearestNeighbours(ValuationMethod):
    """Wilson's edited nearest neighbours (1972): the margin of a point's label among its k neighbours."""

    name = "enn"
    description = "Wilson's edited nearest neighbours (1972): own-label share minus the top other share among k NN"
    params = {"k": 10}

    def check(self) -> dict[str, Any]:
        c = super().check()
        if not isinstance(c["k"], int) or c["k"] < 1:
            raise DataError(f"method 'enn': k must be a whole number >= 1, got {c['k']!r}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        k = self.check()["k"]
        scores = enn_scores(data.x_train, data.y_train, min(k, data.n_train - 1))
        return Valuation(scores=scores, utility_evals=0, extra={"edited": int((scores < 0).sum())})
