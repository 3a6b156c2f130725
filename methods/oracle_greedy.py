"""Oracle greedy: forward selection by the retrained learner's validation accuracy, a headroom reference.

Starting from S = {}, each step adds the candidate c that maximises the validation accuracy of the learner
retrained on S + {c}, ties broken by the lower validation cross-entropy (then the lower index):

    c_t = argmax_{c in P_t} ( acc_valid(S + c), -loss_valid(S + c) ),    S <- S + {c_t},

up to the largest budget. P_t is the candidate pool: all remaining points (``pool = 0``: the plain greedy)
or ``pool`` of them drawn uniformly at random each step (stochastic greedy, Mirzasoleiman et al., AAAI
2015: with pool = (n / k) log(1 / eps) it is within 1 - 1/e - eps of greedy in expectation for submodular
objectives; accuracy is not submodular, so here it is simply a cheaper greedy). It sees the train and
validation splits only, like every method; the test split stays the judge. The order is nested: its
first k points are its subset for budget k, and a point's score is its reverse position (unpicked: 0).

A subset of one class has no finite optimum (the unregularised bias diverges); its model is taken at that
limit, predicting its class everywhere: validation accuracy = the class's share, loss = +inf (so such
candidates tie and go by index), without a fit. This keeps the first steps independent of the solver.

Each step fits |P_t| models, warm-started from the optimum on S (exact for the convex default learner).
Where the logistic model has few parameters the step's fits are solved together by the batched Newton
solver of Monte-Carlo Shapley (:class:`valbench.methods.tmc_shapley.BatchedPrefixFits`); otherwise one by one
with the learner (L-BFGS). Cost: about k_max x pool fits.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from valbench.learners import Learner, LogisticRegression
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.selection import nested_readout
from valbench.methods.tmc_shapley import BatchedPrefixFits
from valbench.methods.utility import Utility


def best_candidate(accuracy: np.ndarray, loss: np.ndarray, candidates: np.ndarray) -> int:
    """Position of the highest accuracy, ties by the lowest loss, then the lowest train index."""
    return int(np.lexsort((candidates, loss, -accuracy))[0])


class _LearnerSteps:
    """One greedy step's fits with the learner itself, each warm-started from the model on S."""

    def __init__(self, utility: Utility) -> None:
        self.utility, self.state = utility, None

    def evaluate(self, selected: list[int], candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
        data, models = self.utility.data, []
        for c in candidates:
            models.append(self.utility.fit(np.array(selected + [int(c)]), init=self.state))
        accuracy = np.array([m.accuracy(data.x_valid, data.y_valid) for m in models])
        loss = np.array([m.loss(data.x_valid, data.y_valid) for m in models])
        return accuracy, loss, [m.state for m in models]

    def accept(self, state: Any) -> None:
        self.state = state


class _NewtonSteps:
    """One greedy step's fits solved together (batched damped Newton), warm-started from the optimum on S."""

    def __init__(self, utility: Utility) -> None:
        self.solver = BatchedPrefixFits(utility, utility.learner.max_iter)
        self.theta = torch.zeros(self.solver.c, self.solver.d1, dtype=torch.float64)

    def evaluate(self, selected: list[int], candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        idx = torch.as_tensor(np.concatenate([selected, candidates]).astype(np.int64))
        k = len(selected)
        w = torch.zeros(len(candidates), len(idx), dtype=torch.float64)
        w[:, :k] = 1.0 / (k + 1)
        w[torch.arange(len(candidates)), k + torch.arange(len(candidates))] = 1.0 / (k + 1)
        thetas = self.solver.solve_weights(idx, w, self.theta)
        logits = torch.einsum("vd,bcd->bvc", self.solver.xv1, thetas)
        accuracy = (logits.argmax(2) == self.solver.yv).double().mean(1).numpy()
        loss = F.cross_entropy(logits.transpose(1, 2), self.solver.yv.expand(len(thetas), -1),
                               reduction="none").mean(1).numpy()
        return accuracy, loss, thetas

    def accept(self, theta: torch.Tensor) -> None:
        self.theta = theta


def oracle_greedy_order(data: Dataset, learner: Learner, n_select: int, pool: int, rng: np.random.Generator,
                        newton: bool) -> tuple[np.ndarray, int]:
    """The greedy order of ``n_select`` train points, and the number of models trained."""
    steps = _NewtonSteps(Utility(data, learner)) if newton else _LearnerSteps(Utility(data, learner))
    remaining = np.ones(data.n_train, dtype=bool)
    selected: list[int] = []
    fits = 0
    y, y_valid = data.y_train, data.y_valid
    for _ in range(n_select):
        candidates = np.flatnonzero(remaining)
        if 0 < pool < len(candidates):
            candidates = np.sort(rng.choice(candidates, pool, replace=False))
        classes = np.unique(y[selected])
        one_class = np.isin(y[candidates], classes) if len(classes) == 1 else np.full(len(candidates), not selected)
        accuracy = (y_valid[None, :] == y[candidates][:, None]).mean(1)  # the one-class limit
        loss = np.full(len(candidates), np.inf)
        states: list[Any] = [None] * len(candidates)
        fitted = np.flatnonzero(~one_class)
        if len(fitted):
            accuracy[fitted], loss[fitted], fitted_states = steps.evaluate(selected, candidates[fitted])
            for position, state in zip(fitted, fitted_states):
                states[position] = state
            fits += len(fitted)
        best = best_candidate(accuracy, loss, candidates)
        if states[best] is not None:
            steps.accept(states[best])
        selected.append(int(candidates[best]))
        remaining[candidates[best]] = False
    return np.asarray(selected, dtype=np.int64), fits


@register_method
class OracleGreedy(ValuationMethod):
    """Forward greedy on the retrained learner's validation accuracy (stochastic pool): a headroom reference."""

    name = "oracle-greedy"
    family = "reference"
    selects_sets = True
    description = "headroom reference: greedy forward selection on retrained validation accuracy"
    params = {"pool": 32, "newton_max_params": 256}

    def check(self) -> dict[str, Any]:
        c = {k: int(v) for k, v in self.config.items()}
        if c["pool"] < 0:
            raise DataError(f"method {self.name!r}: pool must be >= 0 (0 = every remaining point), got {c['pool']}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int] = ()) -> Valuation:
        c = self.check()
        n_select = max(budgets, default=data.n_train)
        newton = isinstance(learner, LogisticRegression) and \
            data.n_classes * (data.n_features + 1) <= c["newton_max_params"]
        order, fits = oracle_greedy_order(data, learner, n_select, c["pool"], np.random.default_rng(seed), newton)
        subsets, scores = nested_readout(order, data.n_train, budgets)
        return Valuation(scores=scores, subsets=subsets, utility_evals=fits,
                         extra={"pool": c["pool"], "solver": "batched-newton" if newton else "learner"})
