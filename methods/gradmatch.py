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

OMP is not nested in k (weights are refitted, points can be dropped), so each budget runs its own OMP. A
point's score is the number of budgets whose subset holds it, plus its weight at the largest budget divided
by the largest weight there (a tie-break in [0, 1]).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from valbench.learners import Learner
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.selection import class_budgets, last_layer_gradients


def _ridge(a_support: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    """argmin_w ||A_S w - b||^2 + lam ||w||^2 (columns of ``a_support`` are the support's gradients)."""
    gram = a_support.T @ a_support + lam * np.eye(a_support.shape[1])
    return np.linalg.lstsq(gram, a_support.T @ b, rcond=None)[0]


def orthogonal_matching_pursuit(a: np.ndarray, b: np.ndarray, k: int, lam: float = 0.0,
                                tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative OMP: ``(support, weights)`` with at most ``k`` columns of ``a`` (d x n) approximating ``b``."""
    support: list[int] = []
    weights = np.zeros(0)
    residual = b.astype(np.float64).copy()
    norm_b = np.linalg.norm(b) or 1.0
    for _ in range(k):
        if np.linalg.norm(residual) / norm_b < tol:
            break
        correlation = a.T @ residual
        correlation[support] = -np.inf
        pick = int(np.argmax(correlation))
        if correlation[pick] <= 0:  # no point moves the sum towards the target
            break
        support.append(pick)
        weights = _ridge(a[:, support], b, lam)
        while len(support) and weights.min() < 0:
            support.pop(int(np.argmin(weights)))
            weights = _ridge(a[:, support], b, lam) if support else np.zeros(0)
        residual = b - a[:, support] @ weights
    return np.asarray(support, dtype=np.int64), weights


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
        subsets, weights = {}, {}
        for k in budgets:
            chosen, chosen_w = [], []
            for cls, k_c in class_budgets(data.y_train, int(k)).items():
                members = np.flatnonzero(data.y_train == cls)
                target = (grads_valid[data.y_valid == cls] if c["target"] == "valid" else grads[members]).sum(0)
                support, w = orthogonal_matching_pursuit(grads[members].T, target, k_c, float(c["lam"]),
                                                         float(c["tol"]))
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
