"""Two semivalues beside Data Shapley, on the same sampling machinery as :mod:`valbench.methods.tmc_shapley`.

* ``beta-shapley`` (Kwon & Zou, AISTATS 2022): phi_i = (1/n) sum_j w(j) E[U(S + i) - U(S) | |S| = j - 1] with
  w(j) = n Beta(j + beta - 1, n - j + alpha) / Beta(alpha, beta) * C(n-1, j-1). In a uniform permutation
  point i sits at position j uniformly and its predecessors are a uniform (j-1)-subset, so weighting each
  TMC marginal by w(position) estimates phi_i without bias (alpha = beta = 1 gives w = 1: Data Shapley).
  alpha > beta favours small sets, which truncation leaves untouched.
* ``banzhaf`` (Wang & Jia, AISTATS 2023), maximum-sample-reuse estimator: draw subsets S with every point
  in independently with probability 1/2, train once per subset, and phi_i = mean U(S | i in S) -
  mean U(S | i not in S): every model informs every point. For the logreg learner the subsets are solved
  in blocks by :class:`~valbench.methods.tmc_shapley.BatchedPrefixFits`.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import betaln, gammaln

from valbench.learners import Learner, LogisticRegression
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.tmc_shapley import BatchedPrefixFits, TMCShapley
from valbench.methods.utility import Utility, check_utility


def beta_position_weights(n: int, alpha: float, beta: float) -> np.ndarray:
    """w(j) for positions j = 1..n (returned 0-based); mean 1 over positions."""
    j = np.arange(1, n + 1, dtype=np.float64)
    log_w = (np.log(n) + betaln(j + beta - 1, n - j + alpha) - betaln(alpha, beta)
             + gammaln(n) - gammaln(j) - gammaln(n - j + 1))
    return np.exp(log_w)


@register_method
class BetaShapley(TMCShapley):
    """Beta Shapley (Kwon & Zou 2022): TMC permutations, marginals weighted by Beta(alpha, beta) position weights."""

    name = "beta-shapley"
    params = {**TMCShapley.params, "alpha": 16.0, "beta": 1.0}

    def check(self) -> dict:
        c = super().check()
        if not (c["alpha"] > 0 and c["beta"] > 0):
            raise DataError(f"method 'beta-shapley': alpha and beta must be > 0, got {c['alpha']}, {c['beta']}")
        return c

    def position_weights(self, n: int) -> np.ndarray:
        return beta_position_weights(n, float(self.config["alpha"]), float(self.config["beta"]))

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        valuation = super().fit(data, learner, seed)
        valuation.extra.update(alpha=float(self.config["alpha"]), beta=float(self.config["beta"]))
        return valuation


@register_method
class Banzhaf(ValuationMethod):
    """Data Banzhaf (Wang & Jia 2023) by maximum sample reuse: one model per random half-subset informs every point."""

    name = "banzhaf"
    params = {"utility": "accuracy", "num_subsets": 500, "block": 32, "newton_max_params": 256}

    def check(self) -> dict:
        c = super().check()
        if int(c["num_subsets"]) < 4:
            raise DataError(f"method 'banzhaf': num_subsets must be >= 4, got {c['num_subsets']}")
        check_utility(self.name, c["utility"])
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        c = self.check()
        m, block = int(c["num_subsets"]), int(c["block"])
        n = data.n_train
        utility = Utility(data, learner, self.config["utility"])
        full = utility.fit(torch.arange(n))
        masks = np.random.default_rng(seed).random((m, n)) < 0.5
        scores = np.empty(m)
        batched = isinstance(learner, LogisticRegression) and block > 0 and \
            data.n_classes * (data.n_features + 1) <= int(self.config["newton_max_params"])
        if batched:
            solver = BatchedPrefixFits(utility, learner.max_iter)
            state = full.state
            init = torch.cat([state["weight"], state["bias"][:, None]], dim=1).double()
            everyone = torch.arange(n)
            for start in range(0, m, block):
                mk = torch.as_tensor(masks[start:start + block]).double()
                sizes = mk.sum(1, keepdim=True)
                theta = solver.solve_weights(everyone, mk / sizes.clamp(min=1), init)
                part = solver.scores(theta).numpy()
                part[sizes[:, 0].numpy() == 0] = utility.empty
                scores[start:start + block] = part
        else:
            for t in range(m):  # warm-started from the full-data model: a half-subset's optimum is nearby
                scores[t] = utility(np.flatnonzero(masks[t]), init=full.state)
        inside, outside = masks.sum(0), (~masks).sum(0)
        mean_in = (masks * scores[:, None]).sum(0) / np.maximum(inside, 1)
        mean_out = (~masks * scores[:, None]).sum(0) / np.maximum(outside, 1)
        var_in = ((masks * (scores[:, None] - mean_in) ** 2).sum(0) / np.maximum(inside - 1, 1))
        var_out = ((~masks * (scores[:, None] - mean_out) ** 2).sum(0) / np.maximum(outside - 1, 1))
        stderr = np.sqrt(var_in / np.maximum(inside, 1) + var_out / np.maximum(outside, 1))
        return Valuation(scores=mean_in - mean_out, stderr=stderr, utility_evals=m + 2,
                         extra={"num_subsets": m, "solver": "batched-newton" if batched else "learner"})
