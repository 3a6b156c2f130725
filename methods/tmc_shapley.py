"""Truncated Monte-Carlo Data Shapley (Ghorbani & Zou, ICML 2019, Algorithm 1).

The Shapley value of train point i under the utility U (the learner trained on a subset, scored on the
validation split) is its marginal contribution averaged over uniformly random orderings pi:

    phi_i = E_pi [ U(P_i^pi + {i}) - U(P_i^pi) ],     P_i^pi = the points before i in pi.

Each sampled permutation grows a prefix one point at a time and trains one model per prefix. Two things
make that affordable:

* truncation: once the prefix's score is within ``tolerance * |U(D)|`` of the full-data score for
  ``patience`` consecutive points, the remaining points of this permutation get a marginal of zero (their
  expected contribution is already below the noise); ``tolerance = 0`` disables truncation (exact MC);
* warm starts: each prefix model starts from the previous prefix's parameters, one point away, so the
  solver needs a few iterations instead of a full solve. For small logistic regressions the prefixes are
  solved by batched float64 Newton to a gradient tolerance, which reaches the same optimum from any start;
  otherwise by the learner's float32 L-BFGS, which stops near (not at) the optimum, so a warm and a cold
  start can differ in the last digits (see ``loo`` and benchmarks/influence_mlp.py).

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

from valbench.learners import Learner, LogisticRegression
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.utility import Utility, check_utility


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


class BatchedPrefixFits:
    """The logreg learner's objective solved on a block of nested prefixes at once (damped Newton, batched).

    For the convex default learner U(S) depends only on the optimum of
    f_S(theta) = mean_{j in S} CE(theta; x_j, y_j) + (l2/2) ||W||^2, not on the solver. Consecutive prefixes
    of a permutation are independent problems, so a block of them is solved together: one batched
    Hessian (B x P x P, P = classes x (features + 1)) and one batched solve per Newton step, with a
    per-problem backtracking line search, warm-started from the previous block's last optimum. This does
    the work of B sequential L-BFGS fits in about as many tensor operations as one, which is where the
    speed comes from; it is used only while P is small enough for dense Hessians.
    """

    def __init__(self, utility: Utility, max_iter: int = 100, tol: float | None = None) -> None:
        """``tol``: stop when every gradient entry is below it (default: the learner's L-BFGS ``tol``)."""
        learner = utility.learner
        data = utility.data
        self.utility, self.max_iter, self.l2 = utility, max_iter, learner.l2
        self.tol = learner.tol if tol is None else tol
        self.c = data.n_classes
        self.x1 = _augment(data.x_train)
        self.y1 = torch.nn.functional.one_hot(torch.as_tensor(data.y_train), self.c).double()
        self.xv1 = _augment(data.x_valid)
        self.yv = torch.as_tensor(data.y_valid)
        self.d1 = self.x1.shape[1]
        self.reg = torch.full((self.c, self.d1), self.l2, dtype=torch.float64)
        self.reg[:, -1] = 0.0  # the learner does not regularise the bias
        self.ridge = 1e-10     # softmax's flat direction (a shift shared by all biases) has no curvature

    def _objective(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(torch.matmul(x, theta.transpose(1, 2)), dim=2)        # B x k x C
        return -(w * (logp * y).sum(2)).sum(1) + 0.5 * (self.reg * theta * theta).sum((1, 2))

    def solve(self, idx: torch.Tensor, sizes: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """Optima (B x C x (d+1)) for the prefixes ``idx[:size]`` of each size, started from ``init``."""
        w = (torch.arange(len(idx))[None, :] < sizes[:, None]).double() / sizes[:, None].double()
        return self.solve_weights(idx, w, init)

    def solve_weights(self, idx: torch.Tensor, w: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """Optima for the train points ``idx`` weighted by each row of ``w`` (B x len(idx), rows sum to 1)."""
        x, y = self.x1[idx], self.y1[idx]
        k, c, d1 = len(idx), self.c, self.d1
        p = c * d1
        xx = (x[:, :, None] * x[:, None, :]).reshape(k, d1 * d1)
        theta = init.expand(len(w), -1, -1).clone()
        f = self._objective(theta, x, y, w)
        active = torch.arange(len(w))  # problems not yet converged; the work shrinks with them
        diag = self.reg.reshape(-1) + self.ridge
        for _ in range(self.max_iter):
            th, wa = theta[active], w[active]
            prob = torch.softmax(torch.matmul(x, th.transpose(1, 2)), dim=2)
            grad = torch.matmul((wa[..., None] * (prob - y)).transpose(1, 2), x) + self.reg * th
            going = grad.abs().amax((1, 2)) > self.tol  # the learner's stopping rule (L-BFGS tolerance_grad)
            active, th, wa, prob, grad = active[going], th[going], wa[going], prob[going], grad[going]
            if len(active) == 0:
                break
            b = len(active)
            cov = torch.diag_embed(prob) - prob[..., :, None] * prob[..., None, :]      # b x k x C x C
            a = (wa[..., None, None] * cov).reshape(b, k, c * c).transpose(1, 2)        # b x CC x k
            hess = torch.matmul(a, xx).reshape(b, c, c, d1, d1).permute(0, 1, 3, 2, 4).reshape(b, p, p)
            hess += torch.diag_embed(diag.expand(b, -1))
            step = torch.linalg.solve(hess, grad.reshape(b, p)).reshape(b, c, d1)
            decrease = (grad * step).sum((1, 2))
            fa = f[active]
            t = torch.ones(b, dtype=torch.float64)
            pending = torch.ones(b, dtype=torch.bool)
            for _ in range(40):  # backtracking (Armijo), every problem with its own step length
                trial = th - t[:, None, None] * step
                f_trial = self._objective(trial, x, y, wa)
                ok = pending & (f_trial <= fa - 1e-4 * t * decrease)
                th[ok], fa[ok] = trial[ok], f_trial[ok]
                pending &= ~ok
                if not pending.any():
                    break
                t = torch.where(pending, t * 0.5, t)
            theta[active], f[active] = th, fa
            active = active[~pending]  # no decrease left at machine precision: solved
        return theta

    def scores(self, theta: torch.Tensor) -> torch.Tensor:
        """U of each model in the batch, with the utility's metric."""
        logits = torch.einsum("vd,bcd->bvc", self.xv1, theta)
        if self.utility.metric == "accuracy":
            return (logits.argmax(2) == self.yv).double().mean(1)
        return -torch.nn.functional.cross_entropy(logits.transpose(1, 2), self.yv.expand(len(theta), -1),
                                                  reduction="none").mean(1)


def _augment(x: np.ndarray) -> torch.Tensor:
    xt = torch.as_tensor(x, dtype=torch.float64)
    return torch.cat([xt, torch.ones(len(xt), 1, dtype=torch.float64)], dim=1)


def batched_permutation_marginals(solver: BatchedPrefixFits, order: np.ndarray, full_score: float,
                                  tolerance: float, patience: int, block: int) -> tuple[np.ndarray, int]:
    """:func:`permutation_marginals` with the prefixes solved ``block`` at a time by ``solver``."""
    n = len(order)
    marginals = np.zeros(n)
    order_t = torch.as_tensor(order)
    previous, fits, close = solver.utility.empty, 0, 0
    threshold = tolerance * abs(full_score)
    theta = torch.zeros(solver.c, solver.d1, dtype=torch.float64)
    for start in range(0, n, block):
        sizes = torch.arange(start + 1, min(start + block, n) + 1)
        thetas = solver.solve(order_t[:int(sizes[-1])], sizes, theta)
        scores = solver.scores(thetas).tolist()
        fits += len(sizes)
        theta = thetas[-1]
        for offset, score in enumerate(scores):
            marginals[order[start + offset]] = score - previous
            previous = score
            close = close + 1 if abs(full_score - score) < threshold else 0
            if close >= patience:
                return marginals, fits
    return marginals, fits


def permutation_order(ss: np.random.SeedSequence, n: int) -> np.ndarray:
    """The permutation drawn from one child seed (``SeedSequence(seed).spawn(max_permutations)[t]``)."""
    return np.random.default_rng(ss).permutation(n)


def _run_permutations(utility: Utility, seeds: list[np.random.SeedSequence], full_score: float,
                      tolerance: float, patience: int, warm_start: bool, block: int = 0,
                      position_weights: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """A chunk of permutations (in one worker): rows of marginals, and the number of models trained.

    ``block > 0`` solves prefixes in batches with :class:`BatchedPrefixFits` (logreg learner only)."""
    torch.set_num_threads(1)
    rows, fits = [], 0
    solver = BatchedPrefixFits(utility, utility.learner.max_iter) if block > 0 else None
    for ss in seeds:
        order = permutation_order(ss, utility.data.n_train)
        if solver is not None:
            row, k = batched_permutation_marginals(solver, order, full_score, tolerance, patience, block)
        else:
            row, k = permutation_marginals(utility, order, full_score, tolerance, patience, warm_start)
        if position_weights is not None:  # a semivalue: the marginal at position j counts w(j) times
            row[order] *= position_weights
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
              "warm_start": True, "block": 32,
              "newton_max_params": 256, "n_jobs": 1}

    def check(self) -> dict[str, Any]:
        c = dict(self.config)
        for key in ("max_permutations", "min_permutations", "batch", "patience", "window", "n_jobs", "block",
                    "newton_max_params"):
            c[key] = int(c[key])
        if c["max_permutations"] < 2 or c["batch"] < 1 or c["patience"] < 1 or c["window"] < 2:
            raise DataError(f"method {self.name!r}: need max_permutations >= 2, batch >= 1, patience >= 1, "
                            f"window >= 2; got {self.config}")
        if c["tolerance"] < 0:
            raise DataError(f"method {self.name!r}: tolerance must be >= 0, got {c['tolerance']}")
        check_utility(self.name, c["utility"])
        return c

    def position_weights(self, n: int) -> np.ndarray | None:
        """Weight of a marginal by its 0-based position in the permutation; None for Shapley (all ones)."""
        return None

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        c = self.check()
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
        params = data.n_classes * (data.n_features + 1)
        block = c["block"] if isinstance(learner, LogisticRegression) and params <= c["newton_max_params"] else 0
        args = (full_score, float(c["tolerance"]), c["patience"], bool(c["warm_start"]), block,
                self.position_weights(data.n_train))
        while len(rows) < c["max_permutations"]:
            todo = seeds[len(rows):len(rows) + c["batch"]]  # the same rounds whatever n_jobs is
            if parallel is None:
                chunks = [_run_permutations(utility, todo, *args)]
            else:  # one contiguous chunk per worker, so rows come back in seed order whatever n_jobs is
                size = -(-len(todo) // workers)
                parts = [todo[i:i + size] for i in range(0, len(todo), size)]
                chunks = parallel(delayed(_run_permutations)(utility, part, *args) for part in parts)
            for chunk_rows, k in chunks:
                fits += k
                for row in chunk_rows:
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
                                "full_score": full_score, "empty_score": utility.empty,
                                "solver": f"batched-newton (block {block})" if block else "learner"})
