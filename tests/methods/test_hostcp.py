import cvxpy as cp
import numpy as np
import pytest
import torch
from torch import nn

from valbench.grid import Cell
from valbench.learners import LogisticRegression
from valbench.protocol import DataError
from valbench.registry import get_method
from valbench.runner import run_cell
from valbench.methods.hostcp.faithful import (budget_subsets, feature_map, lookahead_valid_loss, select_batch,
                            selection_weights)
from valbench.methods.hostcp.layer import build_problem, solve_facility
from tests.conftest import blobs


def distances(b: int, b_old: int, seed: int = 0, dim: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b + b_old, dim, generator=g, dtype=torch.float64)
    d = torch.cdist(f, f)
    return d[:b, :b], d[:b, b:]


@pytest.mark.parametrize("mode", ["lp", "qp"])
def test_layer_solution_is_feasible_and_matches_cvxpy(mode):
    b, b_old, fraction = 8, 5, 0.4
    d_new, d_old = distances(b, b_old, seed=1)
    if mode == "qp":
        d_new, d_old = d_new / 0.1, d_old / 0.1
    z_new, z_old = (z.detach().numpy() for z in solve_facility(d_new, d_old, fraction, mode))
    tol = 1e-6
    for z in (z_new, z_old):
        assert z.min() >= -tol and z.max() <= 1 + tol
    assert np.allclose(z_new.sum(1) + z_old.sum(1), 1, atol=tol)
    assert z_new.sum() <= fraction * b + tol

    problem, (p_new, p_old), (v_new, v_old) = build_problem(b, b_old, fraction, mode)
    p_new.value, p_old.value = d_new.numpy(), d_old.numpy()
    problem.solve(solver=cp.CLARABEL)
    layer_objective = (d_new.numpy() * z_new).sum() + (d_old.numpy() * z_old).sum()
    if mode == "qp":  # unique solution: compare it; the LP may have ties, so compare the optimum value
        layer_objective += 0.5 * ((z_new ** 2).sum() + (z_old ** 2).sum())
        # interior-point tolerances: the layer solution agrees to ~1e-5, the optimum value to ~1e-8
        assert np.allclose(z_new, v_new.value, atol=1e-4) and np.allclose(z_old, v_old.value, atol=1e-4)
    assert layer_objective == pytest.approx(problem.value, abs=1e-6)


def test_layer_gradient_matches_finite_differences_in_qp_mode():
    d_new, d_old = distances(4, 3, seed=2)
    scale = 3.0  # a large smoothing: most entries of Z lie strictly inside the box, so many are informative
    d_new = (d_new / scale).requires_grad_(True)
    weights = torch.linspace(0.5, 2.0, 4, dtype=torch.float64)

    def representativeness(dn):  # a smooth scalar of the layer output, like the selection weights
        z_new, _ = solve_facility(dn, d_old / scale, 0.5, "qp")
        return (weights * z_new.sum(0) ** 2).sum()

    check = dict(eps=1e-5, atol=1e-4, rtol=1e-3, raise_exception=False)
    assert torch.autograd.gradcheck(representativeness, (d_new,), **check)

    def hidden(dn):  # the same function, but its analytical gradient misses a term of size 1e-2
        return representativeness(dn) + 1e-2 * dn.detach().sum() + 0 * dn.sum()

    assert not torch.autograd.gradcheck(hidden, (d_new,), **check)  # the tolerance can fail


def toy_batch(b: int = 16, seed: int = 0):
    """Two separated classes in 2-D; the first half of the batch has flipped labels, valid is clean."""
    rng = np.random.default_rng(seed)

    def draw(n):
        y = rng.integers(0, 2, n)
        x = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y)

    xb, yb = draw(b)
    flipped = torch.arange(b) < b // 2
    yb = torch.where(flipped, 1 - yb, yb)
    (x_old, _), (xv, yv) = draw(8), draw(100)
    return xb, yb, flipped, x_old, xv, yv


def test_lookahead_gradient_reaches_phi_in_qp_mode():
    torch.manual_seed(0)
    xb, yb, _, x_old, xv, yv = toy_batch()
    model = nn.Linear(2, 2)
    theta = {k: torch.zeros_like(v) for k, v in model.named_parameters()}
    phi = feature_map(2, 8)
    s, _ = select_batch(phi, xb, x_old, 8, 0.5, "qp", 0.1, 0.5)
    lookahead_valid_loss(model, theta, xb, yb, s, 1.0, xv, yv).backward()
    grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in phi.parameters()))
    assert grad_norm > 1e-3


def test_selector_steps_leave_out_flipped_labels():
    torch.manual_seed(0)
    xb, yb, flipped, x_old, xv, yv = toy_batch()
    model = nn.Linear(2, 2)
    theta = {k: torch.zeros_like(v) for k, v in model.named_parameters()}
    phi = feature_map(2, 8)
    opt = torch.optim.Adam(phi.parameters(), lr=0.05)
    losses, flipped_share = [], []
    for _ in range(15):
        s, _ = select_batch(phi, xb, x_old, 8, 0.5, "qp", 0.1, 0.5)
        loss = lookahead_valid_loss(model, theta, xb, yb, s, 1.0, xv, yv)
        losses.append(loss.item())
        flipped_share.append((s[flipped].sum() / s.sum()).item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.mean(losses[-3:]) < losses[0] - 0.3
    assert np.mean(flipped_share[-3:]) < flipped_share[0] - 0.1


def test_selection_weights_threshold_and_rescale():
    z = torch.tensor([[1.0, 0.0, 0.0], [0.3, 0.5, 0.0], [0.0, 0.0, 0.2]], requires_grad=True)
    s, r = selection_weights(z, tau=0.9)
    assert torch.allclose(r, torch.tensor([1.3, 0.5, 0.2]))
    assert torch.allclose(s, torch.tensor([1.0, 0.0, 0.0]))
    s, _ = selection_weights(z, tau=0.4)
    assert torch.allclose(s, torch.tensor([1.0, 0.5 / 1.3, 0.0]))
    s[1].backward()
    assert z.grad.abs().sum() > 0  # differentiable where r > tau


def test_budget_subsets_trim_and_top_up():
    scores = np.array([0.1, 5.0, 3.0, 0.0, 2.0, 4.0])
    subsets = budget_subsets(np.array([2, 4, 0]), scores, [1, 3, 5])
    assert subsets[1].tolist() == [2]
    assert subsets[3].tolist() == [0, 2, 4]
    assert sorted(subsets[5].tolist()) == [0, 1, 2, 4, 5]


def test_same_seed_same_subsets_of_exact_size():
    data = blobs(n_train=70, n_valid=30, seed=3)
    learner = LogisticRegression(data.n_features, data.n_classes)
    method = get_method("hostcp")(epochs=2, batch_size=16, neighbours=8, dim=8)
    budgets = [5, 20, 50]
    a = method.fit(data, learner, seed=1, budgets=budgets)
    b = method.fit(data, learner, seed=1, budgets=budgets)
    assert np.array_equal(a.scores, b.scores)
    for k in budgets:
        assert np.array_equal(a.subsets[k], b.subsets[k])
        assert len(np.unique(a.subsets[k])) == k
    a.validate("hostcp", data.n_train, budgets)
    assert a.extra["n_selected"] > 0


@pytest.mark.parametrize("method", ["hostcp", "hostcp-lp"])
def test_runs_through_the_runner(method):
    cell = Cell(dataset="synthetic", method=method, seed=0, noise_rate=0.1, budgets=(0.1, 0.3),
                dataset_params={"n_train": 120, "n_valid": 60, "n_test": 200},
                method_params={"epochs": 1})
    record = run_cell(cell)
    assert record["status"] == "ok", record.get("error")
    assert [row["k"] for row in record["budgets"]] == [12, 36]


@pytest.mark.parametrize("mode", ["qp", "lp"])
def test_both_solvers_give_the_same_selection_step(mode):
    """One mini-batch through features, program and look-ahead: the same weights and selector gradient."""
    xb, yb, _, x_old, xv, yv = toy_batch()
    model = nn.Linear(2, 2)
    theta = {k: torch.zeros_like(v) for k, v in model.named_parameters()}
    steps = {}
    for solver in ("fast", "cvxpylayers"):
        torch.manual_seed(0)
        phi = feature_map(2, 8)
        s, _ = select_batch(phi, xb, x_old, 8, 0.25, mode, 0.1, 0.5, solver=solver)
        lookahead_valid_loss(model, theta, xb, yb, s, 1.0, xv, yv).backward()
        steps[solver] = s.detach(), torch.cat([p.grad.flatten() for p in phi.parameters()])
    (s_fast, g_fast), (s_ref, g_ref) = steps["fast"], steps["cvxpylayers"]
    assert s_fast.sum() > 0 and torch.allclose(s_fast, s_ref, atol=1e-4)
    if mode == "qp":
        assert g_ref.norm() > 1e-3 and (g_fast - g_ref).norm() <= 1e-2 * g_ref.norm()
    else:  # the LP's derivative is zero; cvxpylayers returns a tiny interior-point artefact instead
        assert g_fast.norm() == 0 and g_ref.norm() < 1e-3


def test_unknown_solver_is_rejected_up_front():
    data = blobs(n_train=40, n_valid=20, seed=0)
    with pytest.raises(DataError, match=r"solver must be one of \('fast', 'cvxpylayers'\)"):
        get_method("hostcp")(solver="clarabel").fit(data, LogisticRegression(2, 2), seed=0)


@pytest.mark.parametrize("method", ["hostcp", "hostcp-lp"])
def test_selector_moves_only_on_a_nonzero_gradient(method, monkeypatch):
    """A zero gradient (the LP's, always) leaves phi at its initial weights (Adam's weight decay alone would
    collapse it); the QP's gradient moves it."""
    import valbench.methods.hostcp.faithful as hostcp_module

    made = []

    def spy(n_features, dim):
        phi = feature_map(n_features, dim)
        made.append((phi, {k: v.clone() for k, v in phi.named_parameters()}))
        return phi

    monkeypatch.setattr(hostcp_module, "feature_map", spy)
    data = blobs(n_train=70, n_valid=30, seed=3)
    # a large smoothing, budget and threshold: points get selected and the QP's gradient is nonzero
    get_method(method)(epochs=1, batch_size=16, neighbours=8, dim=8, gamma=10.0, fraction=0.5, tau=0.5).fit(
        data, LogisticRegression(data.n_features, data.n_classes), seed=1, budgets=[10])
    phi, before = made[0]
    unchanged = all(torch.equal(p, before[k]) for k, p in phi.named_parameters())
    assert unchanged == (method == "hostcp-lp")


@pytest.mark.parametrize("model", [nn.Linear(5, 3), nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))],
                         ids=["linear-closed-form", "mlp-vmap"])
def test_fused_lookahead_gradient_equals_the_double_backward(model):
    """lookahead_gradient (per-sample gradients, no second-order graph) against autograd through
    lookahead_valid_loss, and its step against the gradient of the weighted batch loss."""
    from valbench.methods.hostcp.faithful import lookahead_gradient, weighted_loss

    g = torch.Generator().manual_seed(0)
    xb, xv = torch.randn(9, 5, generator=g), torch.randn(20, 5, generator=g)
    yb, yv = torch.randint(0, 3, (9,), generator=g), torch.randint(0, 3, (20,), generator=g)
    theta = {k: torch.randn(v.shape, generator=g) * 0.3 for k, v in model.named_parameters()}
    s = torch.rand(9, generator=g).requires_grad_(True)
    lookahead_valid_loss(model, theta, xb, yb, s, 0.7, xv, yv).backward()
    grad_s, step = lookahead_gradient(model, theta, xb, yb, s, 0.7, xv, yv)
    assert torch.allclose(grad_s, s.grad, atol=1e-6, rtol=1e-4)
    params = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    expected = torch.autograd.grad(weighted_loss(model, params, xb, yb, s.detach()), list(params.values()))
    assert torch.allclose(step, torch.cat([e.flatten() for e in expected]), atol=1e-6)
