"""Influence functions (Koh & Liang, ICML 2017) for the multinomial logistic-regression learner.

With theta the fitted weights and bias of the learner's objective
L(theta) = (1/n) sum_j l_j(theta) + (l2/2) ||W||^2, removing train point i moves the optimum by
theta_{-i} - theta ~= (1/n) H^{-1} (g_i - g_bar) (g_i = grad l_i, g_bar = mean_j g_j, H = Hessian of L), so
the validation loss changes by

    value_i = (1/n) grad L_val^T H^{-1} (g_i - g_bar)  ~=  L_val(D \\ {i}) - L_val(D),

which is positive when the point helps (removing it hurts): higher = more valuable. Koh & Liang's
up-weighting influence is -n * value_i up to the g_bar term; that term comes from the learner's mean
(not sum) loss and only shifts every value by the same constant.

Softmax regression has closed forms for everything, so nothing loops over points: with p_i the predicted
probabilities, y_i the one-hot label and x~_i = [x_i, 1],

    g_i = (p_i - y_i) (x) x~_i,      H = (1/n) sum_i (diag p_i - p_i p_i^T) (x) x~_i x~_i^T + l2 I_W + damping I.

One linear solve s = H^{-1} grad L_val serves every point: value_i = (1/n) (g_i - g_bar)^T s. It is exact
(dense Cholesky) up to ``max_exact_params`` parameters and conjugate gradients on closed-form
Hessian-vector products beyond. ``damping`` also absorbs softmax's one flat direction (a shift shared by
all classes' biases), which no gradient has a component along.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.learners import Learner, LogisticRegression
from bench.protocol import DataError, Dataset, MethodError, Valuation, ValuationMethod
from bench.registry import register_method


def _augment(x: np.ndarray) -> torch.Tensor:
    xt = torch.as_tensor(x, dtype=torch.float64)
    return torch.cat([xt, torch.ones(len(xt), 1, dtype=torch.float64)], dim=1)


def _residuals(theta: torch.Tensor, x1: torch.Tensor, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities p and residuals p - onehot(y) of the model theta (C x (d+1)) on x1."""
    p = torch.softmax(x1 @ theta.T, dim=1)
    return p, p - torch.nn.functional.one_hot(torch.as_tensor(y), theta.shape[0]).double()


def conjugate_gradient(apply: callable, b: torch.Tensor, tol: float = 1e-10, max_iter: int = 1000) -> torch.Tensor:
    """Solve A x = b for a symmetric positive-definite A given as ``apply(v) = A v``."""
    x = torch.zeros_like(b)
    r = b.clone()
    d = r.clone()
    rr = (r * r).sum()
    stop = tol * tol * float((b * b).sum())
    for _ in range(max_iter):
        if float(rr) <= stop:
            break
        ad = apply(d)
        alpha = rr / (d * ad).sum()
        x += alpha * d
        r -= alpha * ad
        rr_new = (r * r).sum()
        d = r + (rr_new / rr) * d
        rr = rr_new
    return x


def influence_values(theta: torch.Tensor, data: Dataset, l2: float, damping: float,
                     max_exact_params: int) -> tuple[np.ndarray, str]:
    """Values of every train point for the softmax regression ``theta`` (C x (d+1)); and the solver used."""
    n, (c, d1) = data.n_train, theta.shape
    x1, xv1 = _augment(data.x_train), _augment(data.x_valid)
    p, resid = _residuals(theta, x1, data.y_train)
    _, resid_v = _residuals(theta, xv1, data.y_valid)
    grad_val = resid_v.T @ xv1 / len(xv1)                                   # C x (d+1)
    reg = torch.full((c, d1), l2, dtype=torch.float64)
    reg[:, -1] = 0.0                                                        # the bias is not regularised
    reg += damping
    if c * d1 <= max_exact_params:
        # H[(a, i), (b, j)] = (1/n) sum_k (delta_ab p_ka - p_ka p_kb) x_ki x_kj  (+ reg on the diagonal)
        cov = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]           # n x C x C
        h = torch.einsum("kab,ki,kj->aibj", cov, x1, x1).reshape(c * d1, c * d1) / n
        h += torch.diag(reg.reshape(-1))
        s = torch.linalg.solve(h, grad_val.reshape(-1)).reshape(c, d1)
        solver = "exact"
    else:
        def hvp(v: torch.Tensor) -> torch.Tensor:
            a = x1 @ v.T                                                    # n x C: x~_k . v_a
            b = p * a - p * (p * a).sum(1, keepdim=True)                    # (diag p - p p^T) a
            return b.T @ x1 / n + reg * v
        s = conjugate_gradient(hvp, grad_val)
        solver = "cg"
    raw = ((resid @ s) * x1).sum(1)                                         # g_i . s, without forming g_i
    return ((raw - raw.mean()) / n).numpy(), solver


@register_method
class Influence(ValuationMethod):
    """Influence functions (Koh & Liang 2017): first-order change of validation loss when a point is removed."""

    name = "influence"
    params = {"damping": 1e-6, "max_exact_params": 3000}

    def check(self) -> dict:
        c = super().check()
        if not c["damping"] >= 0:
            raise DataError(f"method 'influence': damping must be >= 0, got {c['damping']}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        if not isinstance(learner, LogisticRegression):
            raise MethodError(f"method 'influence' supports the logreg learner only (closed-form gradients and "
                              f"Hessian), got {learner.name!r}")
        damping = float(self.check()["damping"])
        model = learner.fit(data.x_train, data.y_train)
        state = model.state
        theta = torch.cat([state["weight"], state["bias"][:, None]], dim=1).double()
        values, solver = influence_values(theta, data, learner.l2, damping, int(self.config["max_exact_params"]))
        return Valuation(scores=values, utility_evals=1, extra={"solver": solver})
