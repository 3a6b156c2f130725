"""CRAIG (Mirzasoleiman, Bilmes & Leskovec, "Coresets for Data-efficient Training of Machine Learning
Models", ICML 2020): weighted medoids of the per-point gradients, per class.

CRAIG bounds the error of replacing the full gradient sum_i g_i by a weighted subset sum_j gamma_j g_j by
sum_i min_{j in S} ||g_i - g_j||, and minimises that bound as a facility-location problem

    max_{|S| = k} F(S) = sum_i max_{j in S} (d_0 - ||g_i - g_j||),

greedily (nested in k, within 1 - 1/e of the optimum), per class with the budget split by class share.
The weight of medoid j is the size of its cluster, gamma_j = |{i : j = argmin_{m in S} ||g_i - g_m||}|, so a
class's weights sum to its size. The harness retrains on the medoids with these weights (``weighted``) or
without them, which shows what the weights are worth.

g_i is the gradient of the loss of the learner trained on all the data with respect to its last layer,
[p_i - e_{y_i}, (p_i - e_{y_i}) x h_i] (DeepCore's and CORDS's last-layer embedding; for logistic regression
the full gradient), or its bias part only (``with_input = false``). d_0 = max ||g_i - g_j|| + 1e-3 as in
DeepCore. The greedy is apricot's lazy greedy (:mod:`valbench.methods.selection`); it stops at each class's share of
the largest budget, the other points following by their marginal gain. Memory: one class's dense n_c x n_c
similarity at a time (Shuttle's largest class: 1.9 GB at 20,000 points), the weights of every budget read off
it before the next class's is built.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from valbench.learners import Learner
from valbench.protocol import Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.selection import (class_budgets, class_readout, class_steps, compile_facility_location,
                                        distance_similarity, facility_location_order, last_layer_gradients,
                                        medoid_weights, squared_distances)


def craig_select(gradients: np.ndarray, y: np.ndarray,
                 budgets: Sequence[int]) -> tuple[dict[int, np.ndarray], dict[int, dict[int, np.ndarray]]]:
    """Per class: the greedy facility-location order of its points (train indices; its share of the largest
    budget in picks, then the rest by marginal gain), and gamma of the class's first k_c medoids for every
    share k_c the budgets give it (``{class: {k_c: weights}}``), read off the similarity while it exists: one
    class's n_c x n_c similarity at a time (built in place)."""
    orders, weights = {}, {}
    steps = class_steps(y, budgets)
    shares = {int(c): sorted({class_budgets(y, int(k))[int(c)] for k in budgets}) for c in np.unique(y)}
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        distance = squared_distances(gradients[members])
        sim = distance_similarity(np.sqrt(distance, out=distance))  # in place: still the one n_c x n_c array
        positions = facility_location_order(sim, steps[int(c)])
        orders[int(c)] = members[positions]
        weights[int(c)] = {k_c: medoid_weights(sim, positions[:k_c]) for k_c in shares[int(c)] if k_c > 0}
        del distance, sim
    return orders, weights


def craig_weights(orders: dict[int, np.ndarray], class_weights: dict[int, dict[int, np.ndarray]], y: np.ndarray,
                  k: int) -> np.ndarray:
    """gamma for budget k's subset (sorted indices, as :func:`class_readout` returns it)."""
    parts = [(orders[c][:k_c], class_weights[c][k_c]) for c, k_c in class_budgets(y, k).items() if k_c > 0]
    idx = np.concatenate([p[0] for p in parts])
    return np.concatenate([p[1] for p in parts])[np.argsort(idx)]


@register_method
class Craig(ValuationMethod):
    """CRAIG (Mirzasoleiman et al. 2020): per-class weighted facility location on last-layer gradients."""

    name = "craig"
    family = "set-selection"
    selects_sets = True
    description = "CRAIG (Mirzasoleiman et al. 2020): per-class gradient medoids with cluster-size weights"
    params = {"weighted": True, "with_input": True}

    def prepare(self) -> None:
        compile_facility_location()

    def fit(self, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int] = ()) -> Valuation:
        model = learner.fit(data.x_train, data.y_train)
        gradients = last_layer_gradients(model, data.x_train, data.y_train, bool(self.config["with_input"]))
        orders, class_weights = craig_select(gradients, data.y_train, budgets)
        subsets, scores = class_readout(orders, data.y_train, budgets)
        weights = {k: craig_weights(orders, class_weights, data.y_train, k) for k in subsets} \
            if self.config["weighted"] else None
        return Valuation(scores=scores, subsets=subsets, weights=weights, utility_evals=1,
                         extra={"weighted": bool(self.config["weighted"]), "gradient_dim": gradients.shape[1]})
