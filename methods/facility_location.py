"""Facility-location selection with apricot (Schreiber, Bilmes & Noble, JMLR 2020) in the input space.

The submodular facility-location function of a subset S of the train split,

    F(S) = sum_i max_{j in S} sim(x_i, x_j),    sim = max_{a,b} ||x_a - x_b||^2 - ||x_i - x_j||^2

(apricot's ``metric="euclidean"`` similarity), is maximised by lazy greedy (Minoux 1978), whose first k
picks are within (1 - 1/e) of the best k-subset (Nemhauser, Wolsey & Fisher 1978) and are its answer for
budget k: one greedy order serves every budget, so the greedy stops at the largest budget (per class: at the
class's share of it); the points it never picked follow by their marginal gain after its last pick, and a
point's score is its reverse position in that order.

* ``per_class = true``: one greedy order per class on that class's points, the budget split by class share
  (largest remainder, :func:`valbench.methods.selection.class_budgets`): CRAIG's setting, in input space.
* ``neighbors = m > 0``: the similarity keeps each point's m nearest neighbours only (apricot's sparse
  kNN graph, ``n_neighbors``), O(n m) memory instead of a dense n x n matrix, for large n. The dense
  similarity (``neighbors = 0``) is one float64 n_c x n_c array per class, built in place: 1.9 GB for
  Shuttle's largest class (~15,600 of 20,000 points), 32 MB per Fashion-MNIST class.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.neighbors import NearestNeighbors

from valbench.learners import Learner
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.selection import (class_readout, class_steps, compile_facility_location, facility_location_order,
                                        nested_readout, per_class, squared_distances)


def euclidean_similarity(x: np.ndarray, neighbors: int = 0):
    """apricot's euclidean similarity, dense, or (``neighbors > 0``) kept on each point's kNN graph (CSR).

    Dense: max(D^2) - D^2. Sparse: the distances to each point's ``neighbors`` nearest (itself included)
    turned into max(d) - d over the kept entries, as apricot's ``n_neighbors`` option does.
    """
    x = np.asarray(x, dtype=np.float64)
    if neighbors <= 0 or neighbors >= len(x):
        squared = squared_distances(x)  # one n x n array, turned into the similarity in place
        return np.subtract(squared.max(initial=0.0), squared, out=squared)
    dist, idx = NearestNeighbors(n_neighbors=neighbors).fit(x).kneighbors(x)
    sim = dist.max() - dist
    rows = np.repeat(np.arange(len(x)), neighbors)
    return csr_matrix((sim.ravel(), (rows, idx.ravel())), shape=(len(x), len(x)))


def facility_location_selection(x: np.ndarray, neighbors: int = 0, n_select: int | None = None) -> np.ndarray:
    """The lazy-greedy facility-location order of the rows of ``x`` (apricot): ``n_select`` greedy picks (all:
    None), the other points after them by their marginal gain (:func:`methods.selection.facility_location_order`)."""
    if len(x) == 1:
        return np.zeros(1, dtype=np.int64)
    return facility_location_order(euclidean_similarity(x, neighbors), len(x) if n_select is None else n_select)


@register_method
class FacilityLocation(ValuationMethod):
    """Facility location (apricot, lazy greedy) in input space; per-class and kNN-sparse options."""

    name = "facility-location"
    family = "set-selection"
    selects_sets = True
    description = "submodular facility location in input space (apricot lazy greedy), optionally per class"
    params = {"per_class": True, "neighbors": 0}

    def prepare(self) -> None:
        compile_facility_location()

    def check(self) -> dict[str, Any]:
        c = dict(self.config)
        if int(c["neighbors"]) < 0:
            raise DataError(f"method {self.name!r}: neighbors must be >= 0 (0 = dense), got {c['neighbors']}")
        if not isinstance(c["per_class"], bool):
            raise DataError(f"method {self.name!r}: per_class must be true or false, got {c['per_class']!r}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int] = ()) -> Valuation:
        c = self.check()
        m, y = int(c["neighbors"]), data.y_train
        if c["per_class"]:
            steps = class_steps(y, budgets)  # each class's greedy stops at its share of the largest budget
            orders = per_class(y, lambda members: facility_location_selection(data.x_train[members], m,
                                                                              steps[int(y[members[0]])]))
            subsets, scores = class_readout(orders, y, budgets)
        else:
            order = facility_location_selection(data.x_train, m, max(budgets, default=1))
            subsets, scores = nested_readout(order, data.n_train, budgets)
        return Valuation(scores=scores, subsets=subsets, utility_evals=0)
