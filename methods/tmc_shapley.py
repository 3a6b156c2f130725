"""Truncated Monte-Carlo Data Shapley (Ghorbani & Zou, ICML 2019, Algorithm 1).

The Shapley value of train point i under the utility U (the learner trained on a subset, scored on the
validation split) is its marginal contribution averaged over uniformly random orderings pi:

    phi_i = E_pi [ U(P_i^pi + {i}) - U(P_i^pi) ],     P_i^pi = the points before i in pi.

Each sampled permutation grows a prefix one point at a time and trains one model per prefix. Two things
make that affordable:

* truncation: once the prefix's score is within ``tolerance * |U(D)|`` of the full-data score for
  ``patience`` consecutive points, the remaining points of this permutation get a marginal of zero (their
  expected contribution is already below the noise); ``tolerance = 0`` disables truncation (exact MC);
* warm starts: each prefix model starts from the previous prefix's parameters, one point away, so L-BFGS
  needs a few iterations instead of a full solve (exact for the convex default learner).

Permutations run in batches; after each batch the running estimate is checked against the paper's
criterion, the mean absolute change of the values over the last ``window`` permutations relative to
their mean magnitude, and sampling stops below ``convergence`` (or at ``max_permutations``). Every
permutation draws from its own child of ``SeedSequence(seed)``, so the result does not depend on
``n_jobs`` or the batch size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs

from bench.learners import Learner
from bench.protocol import DataError, Dataset, Valuation, ValuationMethod
from bench.registry import register_method
from methods.utility import Utility


def permutation_marginals(utility: Utility, order: np.ndarray, full_score: float, tolerance: float,
                          patience: int, warm_start: bool) -> tuple[np.ndarray, int]:
    """Marginal contributions of every point along ``order`` (zeros past truncation), and models trained."""
    n = len(order)
    marginals = np.zeros(n)
    order_t = torch.as_tensor(order)
    previous, init, fits, close = utility.empty, None, 0, 0
    threshold = tolerance * abs(full_score)
    for position in range(n):
        model = utility.fit(order_t[:position + 1], init=init)
        fits += 1
        score = utility.score(model)
        marginals[order[position]] = score - previous
        previous = score
        if warm_start:
            init = model.state
        close = close + 1 if abs(full_score - score) < threshold else 0
        if close >= patience:  # the rest of the permutation would add noise, not value
            break
    return marginals, fits


def _run_permutations(utility: Utility, seeds: list[np.random.SeedSequence], full_score: float,
                      tolerance: float, patience: int, warm_start: bool) -> tuple[np.ndarray, int]:
    """A chunk of permutations (in one worker): rows of marginals, and the number of models trained."""
    torch.set_num_threads(1)
    rows, fits = [], 0
    for ss in seeds:
        order = np.random.default_rng(ss).permutation(utility.data.n_train)
        row, k = permutation_marginals(utility, order, full_score, tolerance, patience, warm_start)
        rows.append(row)
        fits += k
    return np.stack(rows), fits


def relative_change(running: np.ndarray) -> float:
    """Largest mean |v_t - v_T| / mean |v_T| over the rows t of a window of running estimates (last = T)."""
    last = running[-1]
    scale = np.abs(last).mean() + 1e-12
    return float((np.abs(running - last).mean(axis=1) / scale).max())


@register_method
class TMCShapley(ValuationMethod):
    """Truncated Monte-Carlo Data Shapley (Ghorbani & Zou 2019), warm-started prefixes, convergence stop."""

    name = "tmc-shapley"
    params = {"utility": "accuracy", "tolerance": 0.01, "patience": 5, "max_permutations": 200,
              "min_permutations": 20, "convergence": 0.05, "window": 100, "batch": 10,
              "warm_start": True, "n_jobs": 1}

    def _check(self) -> dict[str, Any]:
        c = dict(self.config)
        for key in ("max_permutations", "min_permutations", "batch", "patience", "window", "n_jobs"):
            c[key] = int(c[key])
        if c["max_permutations"] < 2 or c["batch"] < 1 or c["patience"] < 1 or c["window"] < 2:
            raise DataError(f"method 'tmc-shapley': need max_permutations >= 2, batch >= 1, patience >= 1, "
                            f"window >= 2; got {self.config}")
        if c["tolerance"] < 0:
            raise DataError(f"method 'tmc-shapley': tolerance must be >= 0, got {c['tolerance']}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        c = self._check()
        utility = Utility(data, learner, c["utility"])
        full_score = utility(torch.arange(data.n_train))
        fits = 2  # the empty-set and full-data models
        seeds = np.random.SeedSequence(seed).spawn(c["max_permutations"])
        rows: list[np.ndarray] = []
        running: list[np.ndarray] = []  # running mean after each permutation, for the convergence check
        total = np.zeros(data.n_train)
        error = np.inf
        workers = effective_n_jobs(c["n_jobs"])
        parallel = Parallel(n_jobs=workers) if workers > 1 else None
        args = (full_score, float(c["tolerance"]), c["patience"], bool(c["warm_start"]))
        while len(rows) < c["max_permutations"]:
            todo = seeds[len(rows):len(rows) + c["batch"] * workers]
            if parallel is None:
                chunks = [_run_permutations(utility, todo, *args)]
            else:  # one contiguous chunk per worker, so rows come back in seed order whatever n_jobs is
                size = -(-len(todo) // workers)
                parts = [todo[i:i + size] for i in range(0, len(todo), size)]
                chunks = parallel(delayed(_run_permutations)(utility, part, *args) for part in parts)
            for block, k in chunks:
                fits += k
                for row in block:
                    rows.append(row)
                    total += row
                    running.append(total / len(rows))
            running = running[-c["window"]:]
            if len(rows) >= max(c["min_permutations"], c["window"]):
                error = relative_change(np.stack(running))
                if error < c["convergence"]:
                    break
        marginals = np.stack(rows)
        stderr = marginals.std(axis=0, ddof=1) / np.sqrt(len(rows))
        return Valuation(scores=marginals.mean(axis=0), stderr=stderr, utility_evals=fits,
                         extra={"permutations": len(rows), "convergence_error": float(error),
                                "full_score": full_score, "empty_score": utility.empty})
