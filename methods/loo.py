"""Leave-one-out: v_i = U(D) - U(D \\ {i}), each U(D \\ {i}) by retraining without point i.

For the convex default learner U depends only on the optimum of
f_S(theta) = mean_{j in S} CE(theta; x_j, y_j) + (l2/2) ||W||^2, and the n leave-one-out optima differ from
the full-data one by O(1/n): far less than the learner's float32 L-BFGS resolves (it stops near a gradient
of 1e-5, a parameter error of 1e-3 to 1e-2 at l2 = 1e-3). Retrained that way, cold and warm starts land on
different points of that error ball and flip 1-2 % of the accuracy-LOO values (both do; measured in
``benchmarks/influence_mlp.py``). So for logreg with at most ``newton_max_params`` parameters every optimum,
the full-data one included, is solved in float64 by batched damped Newton (``BatchedPrefixFits``,
``block`` problems at a time) down to a gradient of ``EXACT_TOL``: the values are those of the exact
optima, and warm (from the full optimum) and cold (from zero) starts give the same values to solver
precision; warm needs fewer Newton steps. Otherwise (the MLP, or larger logreg) each point is one L-BFGS
fit of the learner, warm-started from the full model by default: an approximation, local for the MLP.
"""

from __future__ import annotations

import numpy as np
import torch

from valbench.learners import Learner, LogisticRegression
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.tmc_shapley import BatchedPrefixFits
from valbench.methods.utility import Utility, check_utility

EXACT_TOL = 1e-8  # max |gradient| of the Newton solves: parameter error <= 1e-8 / l2, far below the O(1/n) shifts


def exact_loo_scores(utility: Utility, init: dict[str, torch.Tensor] | None, block: int) -> np.ndarray:
    """U(D) - U(D \\ {i}) for every i at the exact logreg optima, warm-started from ``init`` (None: from zero)."""
    n = utility.data.n_train
    solver = BatchedPrefixFits(utility, max_iter=100, tol=EXACT_TOL)
    everyone = torch.arange(n)
    start = torch.zeros(solver.c, solver.d1, dtype=torch.float64) if init is None else \
        torch.cat([init["weight"], init["bias"][:, None]], dim=1).double()
    full_theta = solver.solve_weights(everyone, torch.full((1, n), 1.0 / n, dtype=torch.float64), start)
    full = float(solver.scores(full_theta)[0])
    warm = full_theta[0] if init is not None else start
    scores = np.empty(n)
    for first in range(0, n, block):
        rows = torch.arange(first, min(first + block, n))
        w = torch.ones(len(rows), n, dtype=torch.float64)
        w[torch.arange(len(rows)), rows] = 0.0
        theta = solver.solve_weights(everyone, w / (n - 1), warm)
        scores[first:first + len(rows)] = full - solver.scores(theta).numpy()
    return scores


@register_method
class LeaveOneOut(ValuationMethod):
    """Exact leave-one-out by retraining without each point (batched float64 Newton for small logreg)."""

    name = "loo"
    params = {"utility": "accuracy", "warm_start": True, "block": 32, "newton_max_params": 256}

    def check(self) -> dict:
        c = super().check()
        check_utility(self.name, c["utility"])
        if int(c["block"]) < 1:
            raise DataError(f"method 'loo': block must be >= 1, got {c['block']}")
        if int(c["newton_max_params"]) < 0:
            raise DataError(f"method 'loo': newton_max_params must be >= 0, got {c['newton_max_params']}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        block = int(self.check()["block"])
        utility = Utility(data, learner, self.config["utility"])
        everyone = torch.arange(data.n_train)
        warm = bool(self.config["warm_start"])
        n_params = data.n_classes * (data.n_features + 1)
        if isinstance(learner, LogisticRegression) and n_params <= int(self.config["newton_max_params"]):
            scores = exact_loo_scores(utility, utility.fit(everyone).state if warm else None, block)
            return Valuation(scores=scores, utility_evals=data.n_train + 1, extra={"solver": "batched-newton"})
        full_model = utility.fit(everyone)
        full, init = utility.score(full_model), full_model.state if warm else None
        scores = np.empty(data.n_train)
        keep = torch.ones(data.n_train, dtype=torch.bool)
        for i in range(data.n_train):  # one retraining per point is the definition; the fit dominates
            keep[i] = False
            scores[i] = full - utility(everyone[keep], init=init)
            keep[i] = True
        return Valuation(scores=scores, utility_evals=data.n_train + 1, extra={"solver": "learner"})
