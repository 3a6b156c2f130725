"""Leave-one-out: v_i = U(D) - U(D \\ {i}), each U(D \\ {i}) by retraining, warm-started from the full model.

Warm starting is exact for the convex default learner (L-BFGS reaches the same optimum from any start,
just sooner); for the MLP it is the usual local approximation.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.learners import Learner
from bench.protocol import Dataset, Valuation, ValuationMethod
from bench.registry import register_method
from methods.utility import Utility, check_utility


@register_method
class LeaveOneOut(ValuationMethod):
    """Exact leave-one-out by retraining without each point (warm-started)."""

    name = "loo"
    params = {"utility": "accuracy", "warm_start": True}

    def check(self) -> dict:
        c = super().check()
        check_utility(self.name, c["utility"])
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        self.check()
        utility = Utility(data, learner, self.config["utility"])
        everyone = torch.arange(data.n_train)
        full_model = utility.fit(everyone)
        full = utility.score(full_model)
        init = full_model.state if self.config["warm_start"] else None
        scores = np.empty(data.n_train)
        keep = torch.ones(data.n_train, dtype=torch.bool)
        for i in range(data.n_train):  # one retraining per point is the definition; the fit dominates
            keep[i] = False
            scores[i] = full - utility(everyone[keep], init=init)
            keep[i] = True
        return Valuation(scores=scores, utility_evals=data.n_train + 1)
