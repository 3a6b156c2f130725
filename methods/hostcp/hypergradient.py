"""An exact outer gradient for HOST-CP's metric: the validation loss of the learner retrained on the weighted
selection, differentiated through the retraining (implicit differentiation / influence functions).

HOST-CP (Das et al., ECML PKDD 2021) learns its metric phi through a one-step look-ahead: one SGD step of the
classifier on the selected mini-batch, then the validation loss (``outer="lookahead"``, the paper's;
methods/hostcp/faithful.py). ``outer="hypergradient"`` replaces that signal by the bilevel one
(shared/design/hostcp.md, "An exact outer gradient for phi"): with w = w(phi) the selector's weights,

    theta*(w) = argmin_theta  sum_j w_j l_j(theta) + (l2/2) ||W||^2 + (ridge/2) ||theta||^2
    F(w)      = L_val(theta*(w))            (mean cross-entropy on the validation split)

for the suite's softmax-regression learner (theta = [W, b], l_j the cross-entropy of point j). Stationarity,
sum_j w_j grad l_j(theta*) + R theta* = 0 (R = diag(l2 on W, 0 on b) + ridge I), and the implicit function
theorem give d theta*/d w_j = -H^{-1} grad l_j(theta*) with H = sum_j w_j hess l_j(theta*) + R, hence

    dF/dw_j = - grad L_val(theta*)^T H^{-1} grad l_j(theta*)                       (Koh & Liang's influence)

for every point j at once from ONE solve H v = grad L_val (dense up to ``max_exact_params`` parameters,
conjugate gradients beyond: methods/influence.py's ``solve_logreg_hessian``), then dF/dw_j = -g_j . v with
g_j = (p_j - onehot(y_j)) (x) [x_j, 1]. It is exact because the objective is strictly convex (``ridge`` > 0
also keeps the optimum finite when a class is absent from the selection, whose unregularised bias would
otherwise run to -inf). Checked against central finite differences of F with theta* retrained to 1e-12 and
against methods/influence.py's values (tests/methods/test_hostcp_hypergradient.py).

In HOST-CP (:class:`OuterHypergradient`) the weights w cover **every point selected so far in the current
pass** (epoch), with its selection weight: the points of earlier mini-batches with their weights as they were
selected (constants: phi has moved since, and re-solving their programs would cost a pass per step), and the
current mini-batch's selection with its weights s(phi) (differentiable). Only the current mini-batch's weights
carry phi's gradient, as in the look-ahead; but the learner they are scored by is trained on the whole subset
being built, which is what the subset's value is measured by (the current mini-batch's selection alone, a
handful of points, all of one label in hostcp-fl, would train a model that says little about the subset).
w is normalised to sum 1 as the learner's weighted fit does (valbench.learners), differentiably, so
dF/ds_j = (dF/dw~_j - sum_k w~_k dF/dw~_k) / sum(w). theta* is computed by Newton's method in float64,
warm-started from the previous outer step's theta*.
"""

from __future__ import annotations

import numpy as np
import torch

from valbench.methods.influence import _augment, _residuals, logreg_reg, solve_logreg_hessian

OUTERS = ("lookahead", "hypergradient")


def weighted_objective(theta: torch.Tensor, x1: torch.Tensor, y: np.ndarray, w: torch.Tensor,
                       reg: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """``(J, grad J, p)`` of J(theta) = sum_j w_j CE_j + 1/2 sum reg theta^2, p the predicted probabilities."""
    p, resid = _residuals(theta, x1, y)
    ce = -torch.log(p[torch.arange(len(y)), torch.as_tensor(y)].clamp_min(1e-300))
    value = float((w * ce).sum() + 0.5 * (reg * theta * theta).sum())
    return value, (w[:, None] * resid).T @ x1 + reg * theta, p


def fit_weighted(x1: torch.Tensor, y: np.ndarray, w: torch.Tensor, reg: torch.Tensor,
                 theta0: torch.Tensor | None = None, tol: float = 1e-10, max_iter: int = 50,
                 max_exact_params: int = 3000) -> torch.Tensor:
    """theta*(w) (C x (d+1), float64) by Newton's method with a backtracking (Armijo) line search, from
    ``theta0`` (a warm start) or zero, until the gradient's largest entry is below ``tol``. Beyond
    ``max_exact_params`` the Newton systems are solved by conjugate gradients only to a relative residual
    min(1e-2, |grad|_inf) (inexact Newton: still superlinear, and most of the iterations saved)."""
    theta = torch.zeros_like(reg) if theta0 is None else theta0.clone()
    value, grad, p = weighted_objective(theta, x1, y, w, reg)
    for _ in range(max_iter):
        if float(grad.abs().max()) < tol:
            break
        step, _ = solve_logreg_hessian(p, x1, w, reg, -grad, max_exact_params,
                                       cg_tol=min(1e-2, float(grad.abs().max())))
        slope, t = float((grad * step).sum()), 1.0
        while True:
            new_value, new_grad, new_p = weighted_objective(theta + t * step, x1, y, w, reg)
            if new_value <= value + 1e-4 * t * slope or t < 1e-10:
                break
            t /= 2
        theta, value, grad, p = theta + t * step, new_value, new_grad, new_p
    return theta


def weight_hypergradient(theta: torch.Tensor, x1: torch.Tensor, y: np.ndarray, w: torch.Tensor,
                         xv1: torch.Tensor, yv: np.ndarray, reg: torch.Tensor,
                         max_exact_params: int = 3000) -> tuple[float, torch.Tensor]:
    """``(F, dF/dw)`` at theta = theta*(w): the validation loss and its derivative in every weight w_j
    (also for points with w_j = 0: the effect of adding them), -g_j^T H^{-1} grad L_val."""
    p, resid = _residuals(theta, x1, y)
    pv, resid_v = _residuals(theta, xv1, yv)
    loss = float(-torch.log(pv[torch.arange(len(yv)), torch.as_tensor(yv)].clamp_min(1e-300)).mean())
    grad_val = resid_v.T @ xv1 / len(xv1)
    v, _ = solve_logreg_hessian(p, x1, w, reg, grad_val, max_exact_params)
    return loss, -((resid @ v) * x1).sum(1)


class OuterHypergradient:
    """HOST-CP's outer step by the exact hypergradient over one pass's growing selection (module docstring).

    Solves are dense only up to ``max_exact_params`` = 200 parameters: the pool holds tens of points, so conjugate
    gradients on closed-form Hessian-vector products (O(n C (d+1)) each) beat forming and factoring the
    C(d+1) x C(d+1) Hessian already at digits' 650 parameters (measured: the outer steps' time 2.7 -> 0.5 CPU s).

    ``new_pass()`` at every epoch; ``backward(idx, s)`` per mini-batch (``s`` the batch's selection weights,
    differentiable in phi: it calls ``s.backward`` with dF/ds and records the batch's selection, s > 0, in the
    pool); ``add(idx, s)`` records points selected without an outer step (constants).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor, n_classes: int,
                 l2: float, ridge: float = 1e-4, max_exact_params: int = 200) -> None:
        self.x1, self.y = _augment(x.numpy()), y.numpy()
        self.xv1, self.yv = _augment(xv.numpy()), yv.numpy()
        self.reg = logreg_reg(n_classes, x.shape[1], l2, ridge)
        self.max_exact_params = max_exact_params
        self.theta: torch.Tensor | None = None  # warm start across outer steps (and passes)
        self.last_loss = float("nan")
        self.new_pass()

    def new_pass(self) -> None:
        self.pool_idx = np.zeros(0, dtype=np.int64)
        self.pool_w = torch.zeros(0, dtype=torch.float64)

    def add(self, idx: np.ndarray, s: torch.Tensor) -> None:
        keep = (s > 0).numpy()
        self.pool_idx = np.concatenate([self.pool_idx, idx[keep]])
        self.pool_w = torch.cat([self.pool_w, s.detach().double()[torch.as_tensor(keep)]])

    def backward(self, idx: np.ndarray, s: torch.Tensor) -> float:
        """Accumulate dF/dphi into phi's ``.grad`` through ``s``; returns F = L_val(theta*)."""
        keep = torch.as_tensor((s.detach() > 0).numpy())
        if keep.any():
            points = np.concatenate([self.pool_idx, idx[keep.numpy()]])
            w = torch.cat([self.pool_w, s.double()[keep]])
            w_norm = w / w.sum()
            x1, y = self.x1[points], self.y[points]
            self.theta = fit_weighted(x1, y, w_norm.detach(), self.reg, self.theta, tol=1e-8,
                                      max_exact_params=self.max_exact_params)
            self.last_loss, grad = weight_hypergradient(self.theta, x1, y, w_norm.detach(), self.xv1, self.yv,
                                                        self.reg, self.max_exact_params)
            if w_norm.requires_grad:
                w_norm.backward(grad)
        self.add(idx, s)
        return self.last_loss
