"""Kernel herding as a coreset (Welling, "Herding dynamical weights to learn", ICML 2009; the herding
baseline of iCaRL, Rebuffi et al. CVPR 2017, and of DeepCore, Guo et al. 2022) in input space, per class.

Greedy moment matching: with mu the mean of a class's points, the (t+1)-th pick is

    x_{t+1} = argmin_{x not yet picked} || mu - (x_1 + ... + x_t + x) / (t + 1) ||,

so the running mean of the picks tracks the class mean as closely as one more point allows. One order per
class (the budget split by class share, :func:`valbench.methods.selection.class_budgets`); the order is nested, so
its first k_c picks serve every budget, and it is computed only as far as the largest budget needs. Ties go
to the lowest index. Each step is one matrix-vector product: O(k_c n_c d) per class, no n x n matrix.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from valbench.learners import Learner
from valbench.protocol import Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.selection import class_readout, class_steps, per_class


def herding_order(x: np.ndarray, n_select: int | None = None) -> np.ndarray:
    """The first ``n_select`` (all: None) greedy moment-matching picks of the rows of ``x``.

    ||(t+1) mu - s_t - x||^2 = ||x||^2 - 2 <(t+1) mu - s_t, x> + const, with s_t the sum of the picks so far.
    """
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    n = len(xt)
    n_select = n if n_select is None else min(int(n_select), n)
    mu, norms = xt.mean(dim=0), (xt * xt).sum(dim=1)
    picked_sum = torch.zeros_like(mu)
    taken = torch.zeros(n, dtype=torch.bool)
    order = np.empty(n_select, dtype=np.int64)
    for step in range(n_select):
        cost = norms - 2.0 * (xt @ ((step + 1) * mu - picked_sum))
        cost[taken] = float("inf")
        pick = int(torch.argmin(cost))
        order[step], taken[pick] = pick, True
        picked_sum += xt[pick]
    return order


@register_method
class Herding(ValuationMethod):
    """Herding (Welling 2009) per class in input space: greedy matching of each class's mean."""

    name = "herding"
    family = "set-selection"
    selects_sets = True
    description = "herding (Welling 2009): per-class greedy mean matching in input space"
    params = {}

    def fit(self, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int] = ()) -> Valuation:
        y = data.y_train
        need = class_steps(y, budgets) if len(budgets) else {int(c): int((y == c).sum()) for c in np.unique(y)}
        orders = per_class(y, lambda members: herding_order(data.x_train[members], need[int(y[members[0]])]))
        subsets, scores = class_readout(orders, y, budgets)
        return Valuation(scores=scores, subsets=subsets, utility_evals=0)
