"""Data-OOB (Kwon & Zou, ICML 2023): a point's value is the out-of-bag accuracy of the bagged models.

Draw B bootstrap samples of the train split (``max_samples * n`` draws with replacement each), train one model
per sample, and value point i by the models that did not see it:

    value_i = mean over {b : c_bi = 0} of 1[f_b(x_i) = y_i],        c_bi = times point i was drawn in sample b.

A point that is never out of bag (probability (1 - 1/n)^(nB), negligible for B >= 50) gets the mean value of the
others. ``stderr`` is the standard error of that mean (sqrt(v (1 - v) / k_i) over the k_i models).

The bootstrap draws are OpenDataVal's for the same seed (``RandomState(seed).randint(0, n, (B, m))``), so
``data-oob`` and ``odv-DataOob`` value with the same samples. A model trained on a bootstrap sample is the
learner trained with sample weights c_b (the weighted mean loss over the distinct points equals the mean loss
over the sample with its repeats).

Logistic regression trains all B models together (:func:`fit_bagged_logreg`): the B weighted, L2-regularised
softmax regressions of the learner's objective share one data matrix, so one GEMM per iteration evaluates
every model's logits and one its gradients, by a batched L-BFGS in which each model keeps its own history,
step and stopping test, preconditioned by each class's block of the Hessian at the full-data model (what makes
it converge in tens of iterations on correlated pixels where plain L-BFGS takes hundreds). The models are solved
to a gradient tolerance rather than stopped at the learner's ``max_iter``, so they are the objective's optimum
and not the end of one optimisation path. Any other learner trains its B models in a loop of ``learner.fit``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from valbench.learners import Learner, LogisticRegression
from valbench.params import Rule
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method


def bootstrap_counts(n: int, num_models: int, max_samples: float, seed: int) -> np.ndarray:
    """``(num_models, n)`` counts: how often each point is drawn into each bootstrap sample.

    The draws are OpenDataVal's DataOob's for the same seed: ``RandomState(seed).randint(0, n, (B, m))`` with
    ``m = round(max_samples * n)``.
    """
    m = max(1, round(max_samples * n))
    draws = np.random.RandomState(seed).randint(0, n, size=(num_models, m))
    offsets = np.arange(num_models)[:, None] * n
    return np.bincount((draws + offsets).ravel(), minlength=num_models * n).reshape(num_models, n)


def out_of_bag_values(correct: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's mean correctness over the models it was out of bag for, and that mean's standard error.

    ``correct[b, i]``: whether model b predicts point i's label. Points never out of bag get the mean value.
    """
    oob = counts == 0
    k = oob.sum(0)
    hits = (correct & oob).sum(0)
    values = np.where(k > 0, hits / np.maximum(k, 1), np.nan)
    fallback = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
    values = np.where(k > 0, values, fallback)
    stderr = np.sqrt(values * (1 - values) / np.maximum(k, 1))
    return values, stderr


class _BatchedSoftmax:
    """The learner's objective for B weighted softmax regressions at once, on one augmented data matrix.

    Model b: L_b(theta_b) = sum_i w_bi CE(theta_b x~_i, y_i) + (l2 / 2) ||W_b||^2, with w_b = c_b / sum(c_b),
    theta_b = [W_b, bias_b] of shape (C, d + 1) and x~_i = [x_i, 1].
    """

    def __init__(self, x1: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, n_classes: int, l2: float) -> None:
        self.x1, self.weights, self.l2, self.c = x1, weights, l2, n_classes
        self.onehot = F.one_hot(y, n_classes).to(x1.dtype)
        self.y = y

    def logits(self, theta: torch.Tensor) -> torch.Tensor:
        """(b, n, C) logits of the models ``theta`` (b, C, d + 1): one GEMM for all of them."""
        b = len(theta)
        return (self.x1 @ theta.reshape(b * self.c, -1).T).reshape(len(self.x1), b, self.c).transpose(0, 1)

    def __call__(self, theta: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Losses (b,) and gradients (b, C, d + 1) of the models ``rows`` at ``theta``."""
        b, w = len(theta), self.weights[rows]
        logits = self.logits(theta)
        log_norm = torch.logsumexp(logits, dim=2)
        ce = log_norm - logits.gather(2, self.y[None, :, None].expand(b, -1, 1))[..., 0]
        weight = theta[..., :-1]
        loss = (ce * w).sum(1) + 0.5 * self.l2 * (weight * weight).sum((1, 2))
        residual = (torch.exp(logits - log_norm[..., None]) - self.onehot) * w[..., None]       # b, n, C
        grad = (residual.transpose(0, 1).reshape(len(self.x1), b * self.c).T @ self.x1).reshape(theta.shape)
        grad[..., :-1] += self.l2 * weight
        return loss, grad


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum((1, 2))


# A float32 fit that stalls (its loss no longer changes beyond rounding) within this factor of the gradient
# tolerance is kept; above it, the model continues in float64. Measured with the default tol (1e-4): on Fashion-MNIST
# (2,000 points) 1 of 100 models stalls, at 3.9 x tol; on shuttle (34,800 points, nearly separable) 67 of 82 stall,
# median 1.75 x, 90th percentile 8.5 x, largest 49 x tol. Continuing all of them in float64 costs shuttle 45 % more
# time for 0.007 % of its out-of-bag predictions.
STALL_SLACK = 10.0


def class_preconditioner(x1: torch.Tensor, n_classes: int, l2: float,
                         init: torch.Tensor | None) -> torch.Tensor:
    """(C, d + 1, d + 1): for each class c the inverse of M_c = sum_i p_ic (1 - p_ic) x~_i x~_i^T / n + l2 (on the
    weights, not the bias) + 1e-6, the Hessian's diagonal block of class c at the model ``init`` (probabilities
    p_i; the zero model when None, where every class has the same block and one (1, d + 1, d + 1) is returned).

    Per class rather than one block for all (the classes' mean curvature): a class the start already separates
    (p_ic near 0 or 1) is flatter than one it confuses, and a shared block gets neither right. Measured on
    2,000 Fashion-MNIST points, 100 bootstrap models from the full-data model: 981 model evaluations (the line
    search's included) against 2,327 with the shared block, 13 iterations at most against 34. The Gram matrices
    are formed in float32 (a preconditioner only needs to be close) and inverted through a Cholesky factor in
    float64.
    """
    x32 = x1.float()
    reg = torch.full((x1.shape[1],), l2 + 1e-6, dtype=torch.float64)
    reg[-1] = 1e-6
    if init is None:
        curvature = torch.full((len(x32), 1), (1 - 1 / n_classes) / n_classes)
    else:
        prob = torch.softmax(x32 @ init.float().T, dim=1)
        curvature = prob * (1 - prob)
    blocks = []
    for k in curvature.T:
        gram = ((x32 * k[:, None]).T @ x32).double() / len(x32) + torch.diag(reg)
        blocks.append(torch.cholesky_inverse(torch.linalg.cholesky(gram)))
    return torch.stack(blocks)


def _precondition(q: torch.Tensor, precond: torch.Tensor) -> torch.Tensor:
    """``q`` (B, C, d + 1) times each class's block of ``precond`` (C or 1, d + 1, d + 1)."""
    if len(precond) == 1:
        return q @ precond[0]
    return (q.transpose(0, 1) @ precond).transpose(0, 1)


def fit_bagged_logreg(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, counts: np.ndarray,
                      n_classes: int, l2: float, tol: float = 1e-4, max_iter: int = 500, history: int = 10,
                      dtype: torch.dtype = torch.float32, init: torch.Tensor | None = None,
                      precond: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Fit B softmax regressions of the learner's objective, model b with sample weights ``counts[b]``.

    Returns ``theta`` (B, C, d + 1) (weights then bias per class) and the iterations run: :func:`_lbfgs` from
    ``init`` (C, d + 1; the zero model when None) to max |gradient| <= ``tol``, preconditioned by ``precond``
    (:func:`class_preconditioner` at ``init`` when None: the inverses of the Hessian's diagonal class blocks
    there), shared by every model. A model whose loss stops changing beyond ``dtype``'s rounding (float32 on a
    flat, ill-conditioned objective) at a gradient above :data:`STALL_SLACK` x ``tol`` continues in float64 from
    where it stopped, so every model ends within that of ``tol`` whatever the precision of the bulk of the work
    (and at ``tol`` in float64).
    """
    x64 = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    x64 = torch.cat([x64, torch.ones(len(x64), 1, dtype=torch.float64)], dim=1)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    c = torch.as_tensor(counts, dtype=torch.float64)
    weights = c / c.sum(1, keepdim=True)
    if precond is None:
        precond = class_preconditioner(x64, n_classes, l2, init)

    def solve(rows: torch.Tensor, start: torch.Tensor, precision: torch.dtype) -> tuple[torch.Tensor, int, torch.Tensor]:
        objective = _BatchedSoftmax(x64.to(precision), yt, weights[rows].to(precision), n_classes, l2)
        return _lbfgs(objective, start.to(precision), precond.to(precision), tol, max_iter, history)

    every = torch.arange(len(c))
    start = torch.zeros(len(c), n_classes, x64.shape[1], dtype=torch.float64)
    if init is not None:
        start += init.double()
    theta, iterations, gradient = solve(every, start, dtype)
    unresolved = gradient > STALL_SLACK * tol
    if unresolved.any() and dtype != torch.float64:
        rows = every[unresolved]
        polished, more, _ = solve(rows, theta[rows], torch.float64)
        theta[rows] = polished.to(dtype)
        iterations += more
    return theta, iterations


def _lbfgs(objective: _BatchedSoftmax, theta: torch.Tensor, precond: torch.Tensor, tol: float, max_iter: int,
           history: int) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Batched L-BFGS from ``theta`` (B, C, d + 1): each model has its own curvature pairs, step (backtracking Armijo
    from 1) and stopping test (max |gradient| <= ``tol``, or a step that changes its loss only within the
    precision's rounding); the two-loop recursion starts from ``precond`` scaled per model. Returns the models, the
    iterations run and each model's max |gradient| at its end.
    """
    dtype, num = theta.dtype, len(theta)
    theta = theta.clone()
    every = torch.arange(num)
    loss, grad = objective(theta, every)
    s_hist, y_hist, rho_hist = [], [], []                     # full-size (B, ...) tensors; zero pairs are skipped
    active = every[grad.abs().amax((1, 2)) > tol]
    iterations = 0
    while len(active) and iterations < max_iter:
        iterations += 1
        g = grad[active]
        q = g.clone()
        alphas = []
        for s, yy, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist)):
            a = rho[active] * _dot(s[active], q)
            q -= a[:, None, None] * yy[active]
            alphas.append(a)
        if s_hist:
            s_last, y_last = s_hist[-1][active], y_hist[-1][active]
            ym = _precondition(y_last, precond)
            sy, ymy = _dot(s_last, y_last), _dot(y_last, ym)
            gamma = torch.where((sy > 0) & (ymy > 0), sy / ymy.clamp_min(1e-300), torch.ones_like(sy))
        else:
            gamma = torch.ones(len(active), dtype=dtype)
        r = gamma[:, None, None] * _precondition(q, precond)
        for s, yy, rho, a in zip(s_hist, y_hist, rho_hist, reversed(alphas)):
            beta = rho[active] * _dot(yy[active], r)
            r += s[active] * (a - beta)[:, None, None]
        direction = -r
        slope = _dot(g, direction)
        uphill = slope >= 0                                   # lost curvature information: precondition only
        if uphill.any():
            direction[uphill] = -_precondition(g[uphill], precond)
            slope = _dot(g, direction)

        # backtracking Armijo line search, per model, evaluating only the models still searching
        step = torch.ones(len(active), dtype=dtype)
        new_loss, new_grad = torch.empty_like(loss[active]), torch.empty_like(g)
        searching = torch.arange(len(active))
        start = theta[active]
        for _ in range(30):
            trial = start[searching] + step[searching, None, None] * direction[searching]
            f, gr = objective(trial, active[searching])
            ok = f <= loss[active[searching]] + 1e-4 * step[searching] * slope[searching]
            ok |= step[searching] < 1e-10
            new_loss[searching[ok]], new_grad[searching[ok]] = f[ok], gr[ok]
            searching = searching[~ok]
            if not len(searching):
                break
            step[searching] *= 0.5
        if len(searching):  # no decrease even at a tiny step: keep those models where they are
            new_loss[searching], new_grad[searching] = loss[active[searching]], g[searching]
            step[searching] = 0.0

        s_new = step[:, None, None] * direction
        y_new = new_grad - g
        sy = _dot(s_new, y_new)
        good = sy > 1e-10 * _dot(y_new, y_new).sqrt() * _dot(s_new, s_new).sqrt()
        s_full, y_full = torch.zeros_like(theta), torch.zeros_like(theta)
        rho_full = torch.zeros(num, dtype=dtype)
        s_full[active[good]], y_full[active[good]] = s_new[good], y_new[good]
        rho_full[active[good]] = 1.0 / sy[good]
        s_hist.append(s_full)
        y_hist.append(y_full)
        rho_hist.append(rho_full)
        if len(s_hist) > history:
            s_hist.pop(0), y_hist.pop(0), rho_hist.pop(0)

        # a loss change within rounding: the model cannot get closer to its optimum in this precision
        stalled = (loss[active] - new_loss).abs() <= 10 * torch.finfo(dtype).eps * loss[active].abs()
        theta[active] = start + s_new
        loss[active], grad[active] = new_loss, new_grad
        done = (new_grad.abs().amax((1, 2)) <= tol) | stalled | (step == 0)
        active = active[~done]
    return theta, iterations, grad.abs().amax((1, 2))


CHUNK_LOGITS = 20_000_000  # models x points x classes per batched fit: bounds its (chunk, n, C) temporaries (~80 MB)


def bagged_logreg_correct(data: Dataset, learner: LogisticRegression, counts: np.ndarray, tol: float,
                          max_iter: int) -> tuple[np.ndarray, int]:
    """``correct[b, i]`` for the bootstrap models of ``counts``, and the largest number of iterations a fit took.

    Every bootstrap model starts from the full-data model (fitted first, to the same ``tol``): the bootstrap optima
    lie near it, and the Hessian's class blocks there precondition every fit (:func:`class_preconditioner`,
    formed once). Models are fitted :data:`CHUNK_LOGITS` // (n C) at a time."""
    correct = np.empty(counts.shape, dtype=bool)
    full, iterations = fit_bagged_logreg(data.x_train, data.y_train, np.ones((1, data.n_train)), data.n_classes,
                                         learner.l2, tol=tol, max_iter=max_iter)
    x1 = torch.cat([torch.as_tensor(data.x_train), torch.ones(data.n_train, 1)], dim=1)
    precond = class_preconditioner(x1, data.n_classes, learner.l2, full[0])
    y = torch.as_tensor(data.y_train)
    chunk = max(1, CHUNK_LOGITS // (data.n_train * data.n_classes))
    for start in range(0, len(counts), chunk):
        theta, its = fit_bagged_logreg(data.x_train, data.y_train, counts[start:start + chunk], data.n_classes,
                                       learner.l2, tol=tol, max_iter=max_iter, init=full[0], precond=precond)
        logits = (x1 @ theta.reshape(-1, x1.shape[1]).T).reshape(data.n_train, len(theta), -1)
        correct[start:start + chunk] = (logits.argmax(2) == y[:, None]).T.numpy()
        iterations = max(iterations, its)
    return correct, iterations


def looped_correct(data: Dataset, learner: Learner, counts: np.ndarray) -> np.ndarray:
    """``correct[b, i]`` with one ``learner.fit`` per bootstrap sample: on the points it drew, weighted by their counts.

    The weighted mean loss over the drawn points is the mean loss over the sample with its repeats, and the
    points not drawn (weight 0) would add nothing to it, so they are left out of the fit: a minibatch learner's
    epoch then passes over the sample's distinct points, a fraction 1 - e^-max_samples of the train split
    (0.63 for a full bootstrap), and a fit costs that fraction of one on the whole split.
    """
    correct = np.empty(counts.shape, dtype=bool)
    for b, weight in enumerate(counts):
        drawn = np.flatnonzero(weight)
        model = learner.fit(data.x_train[drawn], data.y_train[drawn], weight=weight[drawn].astype(np.float32))
        correct[b] = model.predict(data.x_train) == data.y_train
    return correct


@register_method
class DataOOB(ValuationMethod):
    """Data-OOB (Kwon & Zou 2023): out-of-bag accuracy over B bootstrap models; logreg's trained together."""

    name = "data-oob"
    description = "Data-OOB (Kwon & Zou 2023): out-of-bag accuracy of B bagged models (logreg: one batched fit)"
    params = {"num_models": 100, "max_samples": 1.0, "tol": 1e-4, "max_iter": 500}
    param_rules = {"num_models": Rule(int, low=1), "max_samples": Rule(float, low=0, low_open=True, high=1),
                   "tol": Rule(float, low=0, low_open=True), "max_iter": Rule(int, low=1)}

    def check(self) -> dict:
        c = super().check()
        for key in ("num_models", "max_iter"):
            if isinstance(c[key], float) and not c[key].is_integer() or int(c[key]) < 1:
                raise DataError(f"method 'data-oob': {key} must be a whole number >= 1, got {c[key]!r}")
            c[key] = int(c[key])
        if not 0 < float(c["max_samples"]) <= 1:
            raise DataError(f"method 'data-oob': max_samples must be in (0, 1], got {c['max_samples']!r}")
        if not float(c["tol"]) > 0:
            raise DataError(f"method 'data-oob': tol must be > 0, got {c['tol']!r}")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        c = self.check()
        counts = bootstrap_counts(data.n_train, c["num_models"], float(c["max_samples"]), seed)
        extra: dict = {"num_models": c["num_models"]}
        if isinstance(learner, LogisticRegression):
            correct, extra["iterations"] = bagged_logreg_correct(data, learner, counts, float(c["tol"]),
                                                                  c["max_iter"])
            extra["solver"] = "batched"
        else:
            correct = looped_correct(data, learner, counts)
            extra["solver"] = "loop"
        values, stderr = out_of_bag_values(correct, counts)
        return Valuation(scores=values, stderr=stderr, utility_evals=c["num_models"], extra=extra)
