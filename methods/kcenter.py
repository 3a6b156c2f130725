"""k-centre greedy (Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
Approach", ICLR 2018, Algorithm 1) in the learner's input space.

Greedy farthest-point selection for the minimax facility (k-centre) problem

    min_{S, |S| = k} max_i min_{j in S} ||x_i - x_j||,

adds at each step u = argmax_i min_{j in S} ||x_i - x_j||, the point worst covered so far. Its radius is
within 2x the optimum (Gonzalez 1985). The order is nested: its first k points are the answer for budget
k, so one run up to the largest budget k_max serves every budget. The greedy stops there; the points it never
picked follow in the order of their distance to the nearest centre at that moment (the next pick would be
the first of them), and a point's score is its reverse position in that completed order (first pick 1, last
1/n). Cost O(n k_max d) time, O(n d) memory (the data, in float64; the distances to S are updated
incrementally by one matrix-vector product per step).

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
from valbench.methods.selection import completed_order, nested_readout


def kcenter_greedy(x: np.ndarray, first: int, n_select: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Farthest-point order of the rows of ``x`` from the centre ``first`` (``n_select`` points, all: None), and
    every point's squared distance to its nearest chosen centre when the greedy stopped (-1 for the chosen).

    The distance update uses ||x_i - c||^2 = ||x_i||^2 - 2 x_i . c + ||c||^2 with the squared norms computed
    once: one matrix-vector product per step and no n x d temporary (the difference x - c cost a full copy of
    the data per step). Squared distances order points as distances do; rounding can make them slightly
    negative, so they are clipped at 0.
    """
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64)
    n = len(xt)
    n_select = n if n_select is None else min(int(n_select), n)
    norms = (xt * xt).sum(1)
    order = np.empty(n_select, dtype=np.int64)
    gap = torch.full((n,), float("inf"), dtype=torch.float64)  # squared distance to the nearest centre
    centre = int(first)
    for step in range(n_select):
        order[step] = centre
        squared = (norms - 2.0 * (xt @ xt[centre]) + norms[centre]).clamp_(min=0.0)
        torch.minimum(gap, squared, out=gap)
        gap[centre] = -1.0  # chosen: never again (distances are >= 0)
        centre = int(torch.argmax(gap))
    return order, gap.numpy()


def kcenter_greedy_order(x: np.ndarray, first: int, n_select: int | None = None) -> np.ndarray:
    """Farthest-point order of the rows of ``x`` from the centre ``first``, ``n_select`` points (all: None)."""
    return kcenter_greedy(x, first, n_select)[0]


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
        k_max = max(budgets, default=1)  # the greedy stops at the largest budget
        picked, gap = kcenter_greedy(data.x_train, first, k_max)
        order = completed_order(picked, data.n_train, gap)
        subsets, scores = nested_readout(order, data.n_train, budgets)
        return Valuation(scores=scores, subsets=subsets, utility_evals=0,
                         extra={"first_centre": first, "greedy_steps": len(picked)})
