import numpy as np
import pytest
import torch

from valbench.learners import MLP, LogisticRegression
from valbench.protocol import DataError, MethodError
from valbench.registry import get_method
from valbench.methods.influence import _augment, influence_values, logreg_reg
from valbench.methods.hostcp.hypergradient import (OuterHypergradient, fit_weighted, weight_hypergradient,
                                                   weighted_objective)
from tests.conftest import blobs
from tests.methods.test_hostcp_plus import outer_step_against_finite_differences

FAST = {"epochs": 2, "batch_size": 32, "neighbours": 8, "dim": 8}


def tiny(seed: int = 0, n: int = 14):
    data = blobs(n_train=n, n_valid=20, n_classes=3, dim=3, seed=seed)
    x1, xv1 = _augment(data.x_train), _augment(data.x_valid)
    w = torch.as_tensor(np.random.default_rng(seed).uniform(0.2, 1.0, n))
    w[3] = 0.0  # a point outside the subset: its derivative is the effect of adding it
    return data, x1, xv1, w, logreg_reg(3, 3, 0.05, 1e-3)


def retrained_loss(data, x1, xv1, w, reg):
    theta = fit_weighted(x1, data.y_train, w, reg, tol=1e-13, max_iter=200)
    return weight_hypergradient(theta, x1, data.y_train, w, xv1, data.y_valid, reg)[0]


def test_newton_fit_is_stationary():
    data, x1, _, w, reg = tiny()
    theta = fit_weighted(x1, data.y_train, w, reg, tol=1e-12)
    assert float(weighted_objective(theta, x1, data.y_train, w, reg)[1].abs().max()) < 1e-12


@pytest.mark.parametrize("max_exact_params", [3000, 0])
def test_hypergradient_matches_central_differences_of_the_retrained_validation_loss(max_exact_params):
    data, x1, xv1, w, reg = tiny()
    theta = fit_weighted(x1, data.y_train, w, reg, tol=1e-13, max_iter=200)
    _, grad = weight_hypergradient(theta, x1, data.y_train, w, xv1, data.y_valid, reg, max_exact_params)
    eps = 1e-5
    for j in range(len(w)):  # every weight, the zero one (index 3) included
        e = torch.zeros_like(w)
        e[j] = eps
        fd = (retrained_loss(data, x1, xv1, w + e, reg) - retrained_loss(data, x1, xv1, w - e, reg)) / (2 * eps)
        assert abs(float(grad[j]) - fd) <= 1e-6 * max(1.0, abs(fd)), (j, float(grad[j]), fd)
    assert grad.abs().max() > 1e-3  # not vacuous


def test_hypergradient_at_uniform_weights_is_minus_n_times_the_influence_value():
    # influence.py: value_i = (1/n) (g_i - g_bar)^T H^{-1} grad L_val at the mean-loss fit; the hypergradient
    # at w = 1/n is -g_i^T H^{-1} grad L_val, so value_i = -(h_i - mean h) / n (two independent code paths)
    data = blobs(n_train=40, n_valid=30, n_classes=3, dim=5, seed=3)
    n, l2, damping = data.n_train, 0.01, 1e-6
    x1, xv1 = _augment(data.x_train), _augment(data.x_valid)
    reg = logreg_reg(3, 5, l2, damping)
    w = torch.full((n,), 1.0 / n, dtype=torch.float64)
    theta = fit_weighted(x1, data.y_train, w, reg, tol=1e-12)
    _, grad = weight_hypergradient(theta, x1, data.y_train, w, xv1, data.y_valid, reg)
    values, _ = influence_values(theta, data, l2, damping, 3000)
    assert np.allclose(values, -(grad - grad.mean()).numpy() / n, rtol=1e-8, atol=1e-12)


def test_outer_step_differentiates_the_normalised_pool_weights():
    # the current batch's weights s are differentiable; the pool's are constants; w is normalised to sum 1
    data, x1, xv1, _, reg = tiny(seed=1, n=16)
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    outer = OuterHypergradient(x, y, torch.as_tensor(data.x_valid), torch.as_tensor(data.y_valid), 3,
                               l2=0.05, ridge=1e-3)
    pool, batch = np.arange(0, 8), np.arange(8, 16)
    pool_s = torch.linspace(0.3, 1.0, 8, dtype=torch.float64)
    outer.add(pool, pool_s)
    s0 = torch.tensor([0.5, 0.0, 1.0, 0.7, 0.0, 0.9, 0.4, 0.6], dtype=torch.float64)
    s = s0.clone().requires_grad_(True)
    outer.backward(batch, s)
    assert len(outer.pool_idx) == 14  # the batch's selection (s > 0) joined the pool

    def loss(s_batch):
        w = torch.cat([pool_s, s_batch])
        return retrained_loss(data, x1, xv1, w / w.sum(), reg)

    eps = 1e-5
    for j in (0, 2, 5):
        e = torch.zeros(8, dtype=torch.float64)
        e[j] = eps
        fd = (loss(s0 + e) - loss(s0 - e)) / (2 * eps)
        assert abs(float(s.grad[j]) - fd) <= 1e-6 * max(1.0, abs(fd))
    assert s.grad[1] == 0 and s.grad[4] == 0  # unselected points carry no gradient (as in the look-ahead)


@pytest.mark.parametrize("name", ["hostcp-fl-hypergradient", "hostcp"])
def test_hostcp_with_the_hypergradient_is_deterministic_and_returns_exact_budgets(name):
    data = blobs(n_train=96, n_valid=30, n_classes=3, dim=4, seed=0)
    learner = LogisticRegression(data.n_features, data.n_classes)
    budgets = [5, 10, 30]
    method = get_method(name)(**FAST, outer="hypergradient")
    valuation = method.fit(data, learner, seed=0, budgets=budgets)
    valuation.validate(name, data.n_train, budgets)
    assert np.isfinite(valuation.extra["hyper_valid_loss"])
    again = get_method(name)(**FAST, outer="hypergradient").fit(data, learner, seed=0, budgets=budgets)
    assert all(np.array_equal(valuation.subsets[k], again.subsets[k]) for k in budgets)  # deterministic


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_the_hypergradient_step_follows_the_gradient_of_the_retrained_validation_loss(seed):
    """Learning phi does what it claims: the gradient handed to phi's optimiser is that of the retrained
    learner's validation loss (finite differences along it, within 10 %: float32 and the solver's tolerance) and
    the step taken lowers that loss to first order."""
    derivative, norm, step = outer_step_against_finite_differences("hostcp-fl-hypergradient", seed)
    assert norm > 1e-2
    assert derivative == pytest.approx(norm, rel=0.1)
    assert step < 0


def test_hypergradient_refuses_a_non_convex_learner_and_unknown_outer():
    data = blobs(n_train=40, n_classes=3, dim=4)
    with pytest.raises(MethodError, match="logreg"):
        get_method("hostcp-fl-hypergradient")(**FAST).fit(data, MLP(data.n_features, 3), seed=0,
                                                                   budgets=[4])
    with pytest.raises(DataError, match="outer"):
        get_method("hostcp-fl")(outer="exact").check()
    with pytest.raises(DataError, match="outer"):
        get_method("hostcp")(outer="exact").check()
