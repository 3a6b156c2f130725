"""GRAD-MATCH (Killamsetty, Sivasubramanian, Ramakrishnan, De & Iyer, "GRAD-MATCH: Gradient Matching based
Data Subset Selection for Efficient Deep Model Training", ICML 2021), per-class variant.

For each class c, with g_i the last-layer gradient of point i under the learner trained on all the data
(:func:`valbench.methods.selection.last_layer_gradients`) and the target G_c = sum_{i in c} g_i (the class's full
train gradient; ``target = "valid"``: the validation split's), it solves

    min_{|S| <= k_c, w >= 0}  || sum_{j in S} w_j g_j - G_c ||^2 + lam ||w||^2

by orthogonal matching pursuit (Algorithm 1 of the paper, OMP of Elenberg et al.): add the point whose
gradient is most positively correlated with the residual, refit the weights of the support by ridge least
squares, drop negative weights (most negative first) until all are >= 0, and repeat until k_c points or
residual / ||G_c|| < ``tol``. k_c is the class's share of the budget (:func:`valbench.methods.selection.class_budgets`).
Where OMP stops short of k_c, the rest are drawn at random (seeded) with weight 1, as CORDS does.

OMP is not nested in k (weights are refitted, points can be dropped), but an iteration never depends on how
many follow, so one run per class to its largest share, read after k_c iterations, is each budget's OMP. A
point's score is the number of budgets whose subset holds it, plus its weight at the largest budget divided
by the largest weight there (a tie-break in [0, 1]).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.linalg import solve_triangular

from valbench.learners import Learner
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods import selection
from valbench.methods.selection import (best_eligible, class_budgets, float32_slack, last_layer_gradients,
                                        screened_argmax)


class RidgeSupport:
    """OMP's support and its ridge least-squares system, held in buffers sized for the most points it can reach.

    For the support S (``indices``: columns of a, in the order added) it keeps the columns as contiguous rows,
    the Gram matrix A_S^T A_S and A_S^T b in buffers, and with lam > 0 the lower Cholesky factor of
    A_S^T A_S + lam I. Adding a point writes one row and column of the buffers (O(d |S|) for its cross products)
    and one row of the factor (a triangular solve); dropping one shifts the rows after it and refactorises. The
    Gram matrix was rebuilt by np.block every step, and the products took a fancy-indexed copy of A_S (30x the
    product's own cost at 300 of Fashion-MNIST's 7,850-long columns). The factor still grows by np.block, one
    C-contiguous copy a step: LAPACK reads that without another copy (a view into a larger buffer costs one per
    solve, three a step). The values are those of the rebuilt arrays, so the solutions are too.
    """

    def __init__(self, b: np.ndarray, capacity: int, lam: float) -> None:
        self.b, self.lam = b, lam
        self.indices: list[int] = []
        self.rows = np.empty((capacity, len(b)))
        self.gram = np.zeros((capacity, capacity))
        self.rhs = np.zeros(capacity)
        self.factor = np.zeros((0, 0))  # the lower Cholesky factor of gram + lam I (lam > 0)

    @property
    def size(self) -> int:
        return len(self.indices)

    def _refactor(self) -> None:
        m = self.size
        self.factor = np.linalg.cholesky(self.gram[:m, :m] + self.lam * np.eye(m)) if m else np.zeros((0, 0))

    def add(self, index: int, column: np.ndarray) -> None:
        """Append column ``index`` of a, whose values are ``column``, to the support."""
        m = self.size
        cross = self.rows[:m] @ column
        diagonal = column @ column
        self.gram[m, :m] = self.gram[:m, m] = cross
        self.gram[m, m] = diagonal
        self.rhs[m] = column @ self.b
        self.rows[m] = column
        self.indices.append(index)
        if self.lam > 0:  # append a row to the Cholesky factor: l = L^-1 cross, d = sqrt(g + lam - l.l)
            row = solve_triangular(self.factor, cross, lower=True, check_finite=False) if m else np.zeros(0)
            pivot = diagonal + self.lam - row @ row
            if pivot > 0:
                self.factor = np.block([[self.factor, np.zeros((m, 1))], [row[None, :], np.sqrt([[pivot]])]])
            else:
                self._refactor()

    def drop(self, position: int) -> None:
        """Remove the support's ``position``-th point."""
        m, p = self.size, position
        self.rows[p:m - 1] = self.rows[p + 1:m]
        self.gram[p:m - 1, :m] = self.gram[p + 1:m, :m]
        self.gram[:m - 1, p:m - 1] = self.gram[:m - 1, p + 1:m]
        self.rhs[p:m - 1] = self.rhs[p + 1:m]
        self.indices.pop(p)
        if self.lam > 0:
            self._refactor()

    def solve(self) -> np.ndarray:
        """argmin_w ||A_S w - b||^2 + lam ||w||^2."""
        m = self.size
        if not m:
            return np.zeros(0)
        if self.lam > 0:  # two triangular solves on the kept factor: O(|S|^2)
            forward = solve_triangular(self.factor, self.rhs[:m], lower=True, check_finite=False)
            return solve_triangular(self.factor, forward, lower=True, trans="T", check_finite=False)
        return np.linalg.lstsq(self.gram[:m, :m], self.rhs[:m], rcond=None)[0]  # lam = 0: may be singular

    def residual(self, weights: np.ndarray) -> np.ndarray:
        """b - A_S w."""
        return self.b - self.rows[:self.size].T @ weights


def omp_path(a: np.ndarray, b: np.ndarray, steps: Sequence[int], lam: float = 0.0,
             tol: float = 1e-6) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Non-negative OMP approximating ``b`` by columns of ``a`` (d x n): ``{t: (support, weights)}`` after t
    iterations, for every t in ``steps``, from one run to the largest.

    An iteration adds the column most positively correlated with the residual, refits the support's weights
    by ridge least squares argmin_w ||A_S w - b||^2 + lam ||w||^2, and drops the most negative weight until
    none is negative. Nothing in an iteration depends on how many follow, so the state after t iterations is
    what a run stopped at t returns: every budget's answer comes from one run. The Gram matrix A_S^T A_S and
    A_S^T b are kept up to date column by column (d |S| per added point instead of d |S|^2 per refit), and
    with lam > 0 so is the Cholesky factor of A_S^T A_S + lam I (one triangular solve per added point, a fresh
    factorisation only when a point is dropped; :class:`RidgeSupport`): a refit costs O(|S|^2) instead of
    O(|S|^3). The correlation a^T residual, a float64 pass over all of a per step (126 MB for a Fashion-MNIST
    class), is memory-bound: on matrices of at least SCREEN_MIN_ELEMENTS a float32 pass finds the few columns
    that can hold the largest float64 correlation, and only those are computed in float64
    (:func:`~valbench.methods.selection.screened_argmax`).
    """
    wanted = sorted({int(t) for t in steps})
    b = b.astype(np.float64)
    system = RidgeSupport(b, wanted[-1] if wanted else 0, lam)
    support = system.indices  # the support's columns of a, in the order added
    weights = np.zeros(0)
    residual = b.copy()
    norm_b = np.linalg.norm(b) or 1.0
    path: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    screen = a.size >= selection.SCREEN_MIN_ELEMENTS
    if screen:
        columns32 = np.ascontiguousarray(a.T, dtype=np.float32)
        column_norm = np.linalg.norm(a, axis=0)
    stopped = False
    for t in range(1, (wanted[-1] if wanted else 0) + 1):
        if not stopped and np.linalg.norm(residual) / norm_b < tol:
            stopped = True
        if not stopped:
            if not screen:
                pick, best = best_eligible(a.T @ residual, support)
            else:
                approx = (columns32 @ residual.astype(np.float32)).astype(np.float64)
                approx[support] = -np.inf
                pick, best = screened_argmax(approx, float32_slack(len(b), column_norm * np.linalg.norm(residual)),
                                             lambda rows: a[:, rows].T @ residual)
            if best <= 0:  # no point moves the sum towards the target
                stopped = True
            else:
                system.add(pick, a[:, pick])
                weights = system.solve()
                while len(support) and weights.min() < 0:
                    system.drop(int(np.argmin(weights)))
                    weights = system.solve()
                residual = system.residual(weights)
        if t in wanted:
            path[t] = (np.asarray(support, dtype=np.int64), weights.copy())
    return path


def orthogonal_matching_pursuit(a: np.ndarray, b: np.ndarray, k: int, lam: float = 0.0,
                                tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative OMP: ``(support, weights)`` with at most ``k`` columns of ``a`` (d x n) approximating ``b``."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return omp_path(a, b, [k], lam, tol)[k]


@register_method
class GradMatch(ValuationMethod):
    """GRAD-MATCH (Killamsetty et al. 2021): per-class non-negative OMP on last-layer gradients, weighted."""

    name = "gradmatch"
    family = "set-selection"
    selects_sets = True
    description = "GRAD-MATCH (Killamsetty et al. 2021): per-class OMP gradient matching with weights"
    params = {"lam": 0.5, "target": "train", "with_input": True, "weighted": True, "tol": 1e-6}

    def check(self) -> dict[str, Any]:
        c = dict(self.config)
        if c["target"] not in ("train", "valid"):
            raise DataError(f"method {self.name!r}: target must be 'train' or 'valid', got {c['target']!r}")
        if float(c["lam"]) < 0:
            raise DataError(f"method {self.name!r}: lam must be >= 0, got {c['lam']}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int] = ()) -> Valuation:
        c = self.check()
        rng = np.random.default_rng(seed)
        model = learner.fit(data.x_train, data.y_train)
        grads = last_layer_gradients(model, data.x_train, data.y_train, bool(c["with_input"]))
        if c["target"] == "valid":
            grads_valid = last_layer_gradients(model, data.x_valid, data.y_valid, bool(c["with_input"]))
        shares = {int(k): class_budgets(data.y_train, int(k)) for k in budgets}
        paths = {}  # one OMP run per class to its largest share serves every budget
        for cls in np.unique(data.y_train):
            members = np.flatnonzero(data.y_train == cls)
            target = (grads_valid[data.y_valid == cls] if c["target"] == "valid" else grads[members]).sum(0)
            steps = [split[int(cls)] for split in shares.values() if split[int(cls)] > 0]
            paths[int(cls)] = omp_path(grads[members].T, target, steps, float(c["lam"]), float(c["tol"]))
        subsets, weights = {}, {}
        for k in budgets:
            chosen, chosen_w = [], []
            for cls, k_c in shares[int(k)].items():
                members = np.flatnonzero(data.y_train == cls)
                support, w = paths[cls][k_c] if k_c > 0 else (np.zeros(0, dtype=np.int64), np.zeros(0))
                fill = rng.choice(np.setdiff1d(np.arange(len(members)), support), k_c - len(support), replace=False)
                chosen.append(members[np.concatenate([support, fill]).astype(np.int64)])
                chosen_w.append(np.concatenate([w, np.ones(len(fill))]))
            idx, w = np.concatenate(chosen), np.concatenate(chosen_w)
            order = np.argsort(idx)
            subsets[int(k)], weights[int(k)] = idx[order], w[order]
        scores = np.zeros(data.n_train)
        for idx in subsets.values():
            scores[idx] += 1
        if budgets:
            top = max(subsets)
            scores[subsets[top]] += weights[top] / max(weights[top].max(), 1e-12)
        if not c["weighted"]:
            weights = None
        return Valuation(scores=scores, subsets=subsets, weights=weights, utility_evals=1,
                         extra={"weighted": bool(c["weighted"]), "target": c["target"]})
