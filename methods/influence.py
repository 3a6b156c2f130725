"""Influence functions (Koh & Liang, ICML 2017) for the logistic-regression and MLP learners.

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

The MLP has no closed forms, so the same quantities come from ``torch.func`` in float64 at the fitted
parameters: grad L_val by reverse mode, H v by forward mode over ``grad`` (``hessian="full"``) or as
J^T (diag p - p p^T) J v / n + l2 v_W (``hessian="gauss-newton"``, the default: J the Jacobian of the logits,
one ``jvp`` and one ``vjp``), the dense H (up to ``max_exact_params``) as those products against the identity
in ``vmap``-ed chunks, and all n values g_i . s at once as one ``jvp`` of the vector of per-sample losses
along s (a directional derivative, so no n x P matrix of per-sample gradients is formed). Full-batch L-BFGS
on a ReLU network usually stops at a kink short of a stationary point (gradients 1e-3 to 1e-1 and Hessian
eigenvalues down to -0.05 measured on the suite's datasets), where the full Hessian is indefinite: the
Gauss-Newton matrix is positive semi-definite everywhere (and equals the full Hessian for softmax
regression), and ``damping`` (``"auto"``: 1e-3 for the MLP) keeps it well conditioned. A damped Hessian
that is still not positive definite (Cholesky fails, or conjugate gradients meet non-positive curvature)
is refused with advice to increase ``damping``. Checked against warm-started retraining and against
pyDVL's ``DirectInfluence`` (``tests/methods/test_influence.py``, ``benchmarks/influence_mlp.py``).
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from valbench.learners import MLP, Learner, LogisticRegression
from valbench.protocol import DataError, Dataset, MethodError, Valuation, ValuationMethod
from valbench.registry import register_method


def _augment(x: np.ndarray) -> torch.Tensor:
    xt = torch.as_tensor(x, dtype=torch.float64)
    return torch.cat([xt, torch.ones(len(xt), 1, dtype=torch.float64)], dim=1)


def _residuals(theta: torch.Tensor, x1: torch.Tensor, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities p and residuals p - onehot(y) of the model theta (C x (d+1)) on x1."""
    p = torch.softmax(x1 @ theta.T, dim=1)
    return p, p - torch.nn.functional.one_hot(torch.as_tensor(y), theta.shape[0]).double()


HESSIANS = ("gauss-newton", "full")  # the same matrix for logreg, whose logits are linear in its parameters
# damping="auto": logreg only needs softmax's flat direction absorbed; the MLP's fit is rarely a stationary point
# (full-batch L-BFGS stalls at ReLU kinks), so its Hessian needs damping well above rounding (its largest
# eigenvalues are ~1-10 on the suite's datasets: 1e-3 bounds the condition number near 1e4)
AUTO_DAMPING = {"logreg": 1e-6, "mlp": 1e-3}


HESSIAN_CHUNK = 2048  # points per einsum of the exact logreg Hessian (bounds its temporary at ~180 MB for 26 classes)


class NotPositiveDefinite(ArithmeticError):
    """The damped Hessian has a direction of non-positive curvature."""


def conjugate_gradient(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, tol: float = 1e-10,
                       max_iter: int = 1000) -> torch.Tensor:
    """Solve A x = b for a symmetric positive-definite A given as ``apply(v) = A v``.

    Raises :class:`NotPositiveDefinite` on a search direction d with d^T A d <= 0 (A is not SPD).
    """
    x = torch.zeros_like(b)
    r = b.clone()
    d = r.clone()
    rr = (r * r).sum()
    stop = tol * tol * float((b * b).sum())
    for _ in range(max_iter):
        if float(rr) <= stop:
            break
        ad = apply(d)
        curvature = (d * ad).sum()
        if curvature <= 0:
            raise NotPositiveDefinite(f"the damped Hessian has curvature {float(curvature / (d * d).sum()):.3g} "
                                      f"along a conjugate-gradient direction")
        alpha = rr / curvature
        x += alpha * d
        r -= alpha * ad
        rr_new = (r * r).sum()
        d = r + (rr_new / rr) * d
        rr = rr_new
    return x


def logreg_reg(n_classes: int, n_features: int, l2: float, damping: float) -> torch.Tensor:
    """The regulariser's diagonal shaped like theta (C x (d+1)): the learner's l2 on the weights (not on the
    bias), plus ``damping`` everywhere."""
    reg = torch.full((n_classes, n_features + 1), l2, dtype=torch.float64)
    reg[:, -1] = 0.0
    return reg + damping


def solve_logreg_hessian(p: torch.Tensor, x1: torch.Tensor, weight: torch.Tensor, reg: torch.Tensor,
                         rhs: torch.Tensor, max_exact_params: int, cg_tol: float = 1e-10) -> tuple[torch.Tensor, str]:
    """``H^{-1} rhs`` for softmax regression's weighted Hessian, and the solver used ("exact" or "cg").

    H = sum_k weight_k (diag p_k - p_k p_k^T) (x) x~_k x~_k^T + diag(reg), with ``p`` (n x C) the predicted
    probabilities, ``x1`` (n x (d+1)) the augmented inputs, ``reg`` and ``rhs`` shaped like theta (C x (d+1)).
    A dense solve up to ``max_exact_params`` parameters, conjugate gradients on closed-form
    Hessian-vector products beyond, to a relative residual ``cg_tol`` (no C(d+1) x C(d+1) matrix is formed).
    """
    c, d1 = rhs.shape
    if c * d1 <= max_exact_params:
        # H[(a, i), (b, j)] = sum_k w_k (delta_ab p_ka - p_ka p_kb) x_ki x_kj  (+ reg on the diagonal), summed
        # over chunks of points: einsum's k x C x C x (d+1) intermediate is 1.8 GB for all 16,000 letter points
        h = torch.zeros(c, d1, c, d1, dtype=torch.float64)
        for start in range(0, len(p), HESSIAN_CHUNK):
            pk, xk, wk = (a[start:start + HESSIAN_CHUNK] for a in (p, x1, weight))
            cov = (torch.diag_embed(pk) - pk[:, :, None] * pk[:, None, :]) * wk[:, None, None]  # chunk x C x C
            h += torch.einsum("kab,ki,kj->aibj", cov, xk, xk)
        h = h.reshape(c * d1, c * d1) + torch.diag(reg.reshape(-1))
        return torch.linalg.solve(h, rhs.reshape(-1)).reshape(c, d1), "exact"

    def hvp(v: torch.Tensor) -> torch.Tensor:
        a = x1 @ v.T                                                        # n x C: x~_k . v_a
        b = p * a - p * (p * a).sum(1, keepdim=True)                        # (diag p - p p^T) a
        return (b * weight[:, None]).T @ x1 + reg * v
    return conjugate_gradient(hvp, rhs, tol=cg_tol), "cg"


def influence_values(theta: torch.Tensor, data: Dataset, l2: float, damping: float,
                     max_exact_params: int) -> tuple[np.ndarray, str]:
    """Values of every train point for the softmax regression ``theta`` (C x (d+1)); and the solver used."""
    n, (c, d1) = data.n_train, theta.shape
    x1, xv1 = _augment(data.x_train), _augment(data.x_valid)
    p, resid = _residuals(theta, x1, data.y_train)
    _, resid_v = _residuals(theta, xv1, data.y_valid)
    grad_val = resid_v.T @ xv1 / len(xv1)                                   # C x (d+1)
    reg = logreg_reg(c, d1 - 1, l2, damping)
    s, solver = solve_logreg_hessian(p, x1, torch.full((n,), 1.0 / n, dtype=torch.float64), reg, grad_val,
                                     max_exact_params)
    raw = ((resid @ s) * x1).sum(1)                                         # g_i . s, without forming g_i
    return ((raw - raw.mean()) / n).numpy(), solver


class FlatModel:
    """A fitted module as a function of one flat float64 parameter vector ``theta`` (for ``torch.func``)."""

    def __init__(self, module: nn.Module) -> None:
        named = [(name, p.detach().double()) for name, p in module.named_parameters()]
        self.names = [name for name, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.theta = torch.cat([p.reshape(-1) for _, p in named])
        # the learner's regulariser (l2/2) ||W||^2 covers the weight matrices, not the biases
        self.decayed = torch.cat([torch.full((size,), float(name.endswith("weight")), dtype=torch.float64)
                                  for name, size in zip(self.names, self.sizes)])
        self.module = copy.deepcopy(module).double()

    def logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params = {name: part.view(shape) for name, part, shape in zip(self.names, theta.split(self.sizes),
                                                                        self.shapes)}
        return torch.func.functional_call(self.module, params, (x,))

    def losses(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample cross-entropy of the model with parameters ``theta`` on ``(x, y)``."""
        return F.cross_entropy(self.logits(theta, x), y, reduction="none")


def autograd_influence_values(module: nn.Module, data: Dataset, l2: float, damping: float, max_exact_params: int,
                              hessian: str = "gauss-newton", chunk: int = 256) -> tuple[np.ndarray, str]:
    """:func:`influence_values` for any module trained on the learner's objective, by ``torch.func``.

    ``hessian``: ``"full"`` (Koh & Liang's) or ``"gauss-newton"`` (J^T (diag p - p p^T) J / n + l2 on the
    weights, J the Jacobian of the logits: positive semi-definite everywhere; equal to the full Hessian for a
    model linear in its parameters).
    """
    model = FlatModel(module)
    theta, n, p = model.theta, data.n_train, len(model.theta)
    x, y = torch.as_tensor(data.x_train, dtype=torch.float64), torch.as_tensor(data.y_train)
    xv, yv = torch.as_tensor(data.x_valid, dtype=torch.float64), torch.as_tensor(data.y_valid)

    def train_objective(t: torch.Tensor) -> torch.Tensor:
        return model.losses(t, x, y).mean() + 0.5 * l2 * (model.decayed * t * t).sum()

    grad_val = torch.func.grad(lambda t: model.losses(t, xv, yv).mean())(theta)
    train_grad = torch.func.grad(train_objective)

    def full_hvp(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(train_grad, (theta,), (v,))[1] + damping * v

    prob = torch.softmax(model.logits(theta, x), dim=1)
    _, logits_vjp = torch.func.vjp(lambda t: model.logits(t, x), theta)

    def gauss_newton_vp(v: torch.Tensor) -> torch.Tensor:
        jv = torch.func.jvp(lambda t: model.logits(t, x), (theta,), (v,))[1]           # n x C
        u = (prob * jv - prob * (prob * jv).sum(1, keepdim=True)) / n                   # (diag p - p p^T) J v / n
        return logits_vjp(u)[0] + (l2 * model.decayed + damping) * v

    hvp = full_hvp if hessian == "full" else gauss_newton_vp

    if p <= max_exact_params:
        eye = torch.eye(p, dtype=torch.float64)
        h = torch.cat([torch.func.vmap(hvp)(eye[i:i + chunk]) for i in range(0, p, chunk)])
        h = (h + h.T) / 2  # symmetric up to rounding
        factor, info = torch.linalg.cholesky_ex(h)
        if info:
            lowest = float(torch.linalg.eigvalsh(h)[0])
            raise NotPositiveDefinite(f"the damped Hessian's smallest eigenvalue is {lowest:.3g}")
        s = torch.cholesky_solve(grad_val[:, None], factor)[:, 0]
        solver = "exact"
    else:
        s = conjugate_gradient(hvp, grad_val)
        solver = "cg"
    raw = torch.func.jvp(lambda t: model.losses(t, x, y), (theta,), (s,))[1]  # g_i . s for every i
    return ((raw - raw.mean()) / n).numpy(), solver


@register_method
class Influence(ValuationMethod):
    """Influence functions (Koh & Liang 2017): first-order change of validation loss when a point is removed.

    Closed forms for logreg; ``torch.func`` Hessian-vector products for the MLP (``damping`` > 0 there).
    """

    name = "influence"
    params = {"damping": "auto", "max_exact_params": 3000, "hessian": "gauss-newton"}
    param_kinds = {"damping": (str, int, float)}  # "auto" or a number
    learners = ("logreg", "mlp")  # their training objective is known; the grid refuses the CNN up front

    def check(self) -> dict:
        """The learner-independent rules of :meth:`_checked_params`, checked before any cell runs."""
        c = super().check()
        self._checked_params(None)
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        damping, max_exact_params = self._checked_params(learner)
        model = learner.fit(data.x_train, data.y_train)
        if isinstance(learner, LogisticRegression):
            state = model.state
            theta = torch.cat([state["weight"], state["bias"][:, None]], dim=1).double()
            values, solver = influence_values(theta, data, learner.l2, damping, max_exact_params)
        else:
            try:
                values, solver = autograd_influence_values(model.module, data, learner.l2, damping,
                                                           max_exact_params, self.config["hessian"])
            except NotPositiveDefinite as error:
                raise MethodError(f"method 'influence': {error} at the {learner.name} fit (a non-convex model "
                                  f"need not sit at a strict minimum): increase damping (now {damping})") from None
        return Valuation(scores=values, utility_evals=1, extra={"solver": solver, "damping": damping})

    def _checked_params(self, learner: Learner) -> tuple[float, int]:
        """``damping`` and ``max_exact_params``, refused before any work when this learner cannot use them
        (``learner`` None: only the rules that hold for every learner, as :meth:`check` runs them up front)."""
        if learner is not None and not isinstance(learner, (LogisticRegression, MLP)):
            raise MethodError(f"method 'influence' supports the logreg and mlp learners (their training objective "
                              f"is known), got {learner.name!r}")
        damping = self.config["damping"]
        if damping == "auto":
            damping = AUTO_DAMPING["logreg" if learner is None else learner.name]
        if isinstance(damping, bool) or not isinstance(damping, (int, float)) or damping < 0:
            raise DataError(f"method 'influence': damping must be a number >= 0 or 'auto', got {damping!r}")
        if damping == 0 and isinstance(learner, MLP):
            raise DataError("method 'influence': damping must be > 0 with the mlp learner (a non-convex model's "
                            "Hessian can be singular at its fit), got 0")
        max_exact_params = self.config["max_exact_params"]
        if isinstance(max_exact_params, bool) or not isinstance(max_exact_params, int) or max_exact_params < 0:
            raise DataError(f"method 'influence': max_exact_params must be an integer >= 0 (0: always conjugate "
                            f"gradients), got {max_exact_params!r}")
        if self.config["hessian"] not in HESSIANS:
            raise DataError(f"method 'influence': unknown hessian {self.config['hessian']!r}; valid: {list(HESSIANS)}")
        return float(damping), max_exact_params
