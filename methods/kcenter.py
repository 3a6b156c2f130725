"""k-centre greedy (Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
Approach", ICLR 2018, Algorithm 1) in the learner's input space.

Greedy farthest-point selection for the minimax facility (k-centre) problem

    min_{S, |S| = k} max_i min_{j in S} ||x_i - x_j||,

adds at each step u = argmax_i min_{j in S} ||x_i - x_j||, the point worst covered so far. Its radius is
within 2x the optimum (Gonzalez 1985). The order is nested: its first k points are the answer for budget
k, so one run up to the whole train split serves every budget, and a point's score is its reverse position
(first pick 1, last 1/n). Cost O(n^2 d) time, O(n) memory (the distances to S are updated incrementally).

The paper starts from the labelled pool; we have none, so the first centre is drawn uniformly at random
with ``numpy.random.default_rng(seed)`` (deterministic for a seed). Distance ties go to the lowest index.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from valbench.learners import Learner
from valbench.protocol import Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.selection import nested_readout


def kcenter_greedy_order(x: np.ndarray, first: int, n_select: int | None = None) -> np.ndarray:
    """Farthest-point order of the rows of ``x`` from the centre ``first``, ``n_select`` points (all: None)."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    n = len(xt)
    n_select = n if n_select is None else min(int(n_select), n)
    order = np.empty(n_select, dtype=np.int64)
    gap = torch.full((n,), float("inf"), dtype=torch.float64)  # distance of each point to its nearest centre
    centre = int(first)
    for step in range(n_select):
        order[step] = centre
        gap = torch.minimum(gap, (xt - xt[centre]).norm(dim=1))
        gap[centre] = -1.0  # chosen: never again (distances are >= 0)
        centre = int(torch.argmax(gap))
    return order


def covering_radius(x: np.ndarray, centres: np.ndarray) -> float:
    """max_i min_{j in centres} ||x_i - x_j||, the k-centre objective."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    return float(torch.cdist(xt, xt[torch.as_tensor(centres)]).min(dim=1).values.max())


@register_method
class KCenterGreedy(ValuationMethod):
    """k-centre greedy (Sener & Savarese 2018) in input space; one nested farthest-point order."""

    name = "kcenter"
    family = "set-selection"
    selects_sets = True
    description = "k-centre greedy (Sener & Savarese 2018): farthest-point coreset in input space"
    params = {}

    def fit(self, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int] = ()) -> Valuation:
        first = int(np.random.default_rng(seed).integers(data.n_train))
        order = kcenter_greedy_order(data.x_train, first)
        subsets, scores = nested_readout(order, data.n_train, budgets)
        return Valuation(scores=scores, subsets=subsets, utility_evals=0, extra={"first_centre": first})
