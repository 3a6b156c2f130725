"""The exact HOST-CP solver (methods/hostcp/solver.py) against cvxpylayers, finite differences and closed forms."""

import numpy as np
import pytest
import torch

from valbench.methods.hostcp.layer import facility_layer, solve_facility
from valbench.methods.hostcp import solver as hostcp_solver
from valbench.methods.hostcp.solver import project_simplex, solve_lp, solve_qp

# cvxpylayers (Clarabel) at tight tolerances, so that its own error stays well below the 1e-5 we compare at
TIGHT = {"solve_method": "Clarabel", "tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12,
         "tol_ktratio": 1e-10}


def features(n: int, seed: int, dim: int = 3) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def split(f: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    d = torch.cdist(f, f, compute_mode="donot_use_mm_for_euclid_dist")
    return d[:b, :b].contiguous(), d[:b, b:].contiguous()


def random_instance(b, b_old, seed):
    return split(features(b + b_old, seed), b)


def duplicates_instance(b, b_old, seed):  # two pairs of identical incoming points, one incoming copy of an old one
    f = features(b + b_old, seed)
    f[1], f[3], f[4] = f[0], f[2], f[b]
    return split(f, b)


def padded_instance(b, b_old, seed):  # half the old columns are far-away dummies (hostcp's pad="far")
    d_new, d_old = random_instance(b, b_old, seed)
    d_old[:, b_old // 2:] = torch.cat([d_new, d_old], 1).max()
    return d_new, d_old


def general_instance(b, b_old, seed):  # not distances: no zero diagonal, no triangle inequality
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, b, generator=g, dtype=torch.float64) * 3, torch.rand(b, b_old, generator=g,
                                                                              dtype=torch.float64) * 3


INSTANCES = {"random": random_instance, "duplicates": duplicates_instance, "padded": padded_instance,
             "general": general_instance}


def objective(mode, d_new, d_old, z_new, z_old):
    value = (d_new * z_new).sum() + (d_old * z_old).sum()
    return value + 0.5 * ((z_new ** 2).sum() + (z_old ** 2).sum()) if mode == "qp" else value


def scalar_of(z_new, z_old):  # a smooth scalar of the solution, like the selection weights
    weights = torch.linspace(0.5, 2.0, z_new.shape[-1], dtype=z_new.dtype)
    return (weights * z_new.sum(-2) ** 2).sum() + (torch.arange(z_old.shape[-1], dtype=z_old.dtype) * z_old).sum()


def reference(d_new, d_old, fraction, mode):
    return facility_layer(d_new.shape[-1], d_old.shape[-1], float(fraction), mode)(d_new, d_old, solver_args=TIGHT)


def assert_feasible(z_new, z_old, budget):
    assert z_new.min() >= 0 and z_old.min() >= 0
    assert torch.allclose(z_new.sum(-1) + z_old.sum(-1), torch.ones(()).double(), atol=1e-12)
    assert z_new.sum() <= budget + 1e-9


@pytest.mark.parametrize("kind", list(INSTANCES))
@pytest.mark.parametrize("scale", [0.1, 1.0])  # D / gamma: near-LP (small supports) and smooth (large supports)
def test_qp_matches_cvxpylayers_in_solution_and_gradient(kind, scale):
    b, b_old, fraction = 8, 6, 0.3
    d_new, d_old = (d / scale for d in INSTANCES[kind](b, b_old, seed=1))
    ours = [d.clone().requires_grad_(True) for d in (d_new, d_old)]
    theirs = [d.clone().requires_grad_(True) for d in (d_new, d_old)]
    z_ours = solve_qp(*ours, fraction * b)
    z_theirs = reference(*theirs, fraction, "qp")
    assert_feasible(*(z.detach() for z in z_ours), fraction * b)
    for a, c in zip(z_ours, z_theirs):
        assert torch.allclose(a, c, atol=1e-5)
    g_ours = torch.cat([g.flatten() for g in torch.autograd.grad(scalar_of(*z_ours), ours)])
    g_theirs = torch.cat([g.flatten() for g in torch.autograd.grad(scalar_of(*z_theirs), theirs)])
    assert (g_ours - g_theirs).norm() <= 1e-2 * g_theirs.norm() + 1e-6


@pytest.mark.parametrize("fraction", [0.99, "tight"])
def test_qp_with_a_slack_or_exactly_tight_budget(fraction):
    b, b_old = 6, 4
    d_new, d_old = random_instance(b, b_old, seed=4)
    unconstrained = solve_qp(d_new, d_old, float(b))[0].sum().item()  # g(0), the new mass without a budget
    assert 0 < unconstrained < b
    # slack: 0.99 B exceeds g(0); tight: the budget is g(0) itself, where the multiplier is exactly 0
    fraction = unconstrained / b if fraction == "tight" else fraction
    z_ours = solve_qp(d_new, d_old, fraction * b)
    z_theirs = reference(d_new, d_old, fraction, "qp")
    for a, c in zip(z_ours, z_theirs):
        assert torch.allclose(a, c, atol=1e-5)


def test_qp_without_old_columns_equals_one_unreachable_column():
    """B' = 0 (feasible only with the whole batch as budget); cvxpylayers needs B' >= 1, so it gets one column
    too far to be used."""
    d_new, _ = random_instance(6, 0, seed=5)
    d_new = d_new / 0.5
    far = torch.full((6, 1), 1e3, dtype=torch.float64)
    for mode, solve in (("qp", solve_qp), ("lp", solve_lp)):
        z_new, z_old = solve(d_new, torch.zeros(6, 0, dtype=torch.float64), 6.0)
        assert z_old.shape == (6, 0)
        assert torch.allclose(z_new, reference(d_new, far, 1.0, mode)[0], atol=1e-5)


def smooth_instance():  # a large smoothing: supports of several columns, so the Jacobian has many entries
    return tuple(d / 3 for d in random_instance(5, 4, seed=2))


def test_qp_gradient_matches_finite_differences():
    d_new, d_old = smooth_instance()
    for budget in (1.5, 5.0):  # tight (the rank-one multiplier term is active) and slack
        inputs = (d_new.clone().requires_grad_(True), d_old.clone().requires_grad_(True))
        assert torch.autograd.gradcheck(lambda dn, do: scalar_of(*solve_qp(dn, do, budget)), inputs,
                                        eps=1e-6, atol=1e-4, rtol=1e-4)


def test_qp_tight_budget_gradient_needs_the_multiplier_term():
    """Dropping the rank-one term through mu gives a wrong gradient: the check above can fail."""
    d_new, d_old = smooth_instance()
    d_new.requires_grad_(True)
    z_new, _ = solve_qp(d_new, d_old, 1.5)
    (grad,) = torch.autograd.grad(z_new.sum(), d_new)
    # the new mass is pinned at the budget, so its derivative along any direction is zero
    assert grad.abs().max() < 1e-9
    z_slack, _ = solve_qp(d_new, d_old, 5.0)
    (grad_slack,) = torch.autograd.grad(z_slack.sum(), d_new)
    assert grad_slack.abs().max() > 1e-3


def test_breakpoint_multiplier_meets_the_budget_exactly():
    shape = (12,)
    d = torch.stack([torch.cdist(f, f) for f in (features(20, seed=s, dim=5) for s in range(12))]) / 0.7
    d_new, d_old = d[:, :10, :10], d[:, :10, 10:]
    budget = torch.linspace(0.5, 4.0, 12, dtype=torch.float64)
    mu = hostcp_solver._breakpoint_multiplier(d_new, d_old, budget)
    z_new, _ = project_simplex(-torch.cat([d_new + mu[:, None, None], d_old], -1))[0].split([10, 10], -1)
    assert mu.shape == shape and (mu > 0).all()
    assert torch.allclose(z_new.sum(dim=(-1, -2)), budget, atol=1e-12)


def test_safeguarded_search_when_the_breakpoint_guess_misses(monkeypatch):
    d_new, d_old = random_instance(8, 6, seed=1)
    expected = solve_qp(d_new, d_old, 2.4)
    monkeypatch.setattr(hostcp_solver, "_breakpoint_multiplier", lambda d_new, d_old, budget: budget * 0)
    for a, c in zip(solve_qp(d_new, d_old, 2.4), expected):
        assert torch.allclose(a, c, atol=1e-9)


def test_batched_equals_one_by_one():
    shape = (2, 3)
    d_new = torch.stack([random_instance(7, 5, seed=s)[0] for s in range(6)]).reshape(*shape, 7, 7)
    d_old = torch.stack([random_instance(7, 5, seed=s)[1] for s in range(6)]).reshape(*shape, 7, 5)
    budgets = torch.tensor([[1.0, 2.0, 3.5], [7.0, 0.0, 2.2]], dtype=torch.float64)
    for solve in (solve_qp, solve_lp):
        z_new, z_old = solve(d_new, d_old, budgets)
        assert z_new.shape == (*shape, 7, 7) and z_old.shape == (*shape, 7, 5)
        for i in range(2):
            for j in range(3):
                one_new, one_old = solve(d_new[i, j], d_old[i, j], budgets[i, j].item())
                assert torch.equal(one_new, z_new[i, j]) and torch.equal(one_old, z_old[i, j])


def test_float32_in_float32_out():
    d_new, d_old = random_instance(6, 3, seed=3)
    z_new, z_old = solve_qp(d_new.float(), d_old.float(), 2.0)
    assert z_new.dtype == z_old.dtype == torch.float32
    assert torch.allclose(z_new.double(), solve_qp(d_new.float().double(), d_old.float().double(), 2.0)[0])


@pytest.mark.parametrize("kind", list(INSTANCES))
@pytest.mark.parametrize("fraction", [0.25, 0.3])  # an integer and a fractional budget (2 and 2.4 of 8)
def test_lp_is_optimal_and_matches_cvxpylayers(kind, fraction):
    b, b_old = 8, 5
    d_new, d_old = INSTANCES[kind](b, b_old, seed=7)
    z_new, z_old = solve_lp(d_new, d_old, fraction * b)
    assert_feasible(z_new, z_old, fraction * b)
    c_new, c_old = reference(d_new, d_old, fraction, "lp")
    assert objective("lp", d_new, d_old, z_new, z_old) == pytest.approx(
        objective("lp", d_new, d_old, c_new, c_old).item(), abs=1e-7)
    # the optimum is unique here, or its ties are symmetric (duplicates): the same point as the interior method
    assert torch.allclose(z_new, c_new, atol=1e-5) and torch.allclose(z_old, c_old, atol=1e-5)


def test_lp_ties_between_rows_share_the_budget():
    # four rows, each self-covered at cost 0 or served by the old point at cost 1: equal savings, budget 2 of 4
    d_new = torch.ones(4, 4, dtype=torch.float64) * 5 - 5 * torch.eye(4, dtype=torch.float64)
    d_old = torch.ones(4, 2, dtype=torch.float64)  # two tied old columns
    z_new, z_old = solve_lp(d_new, d_old, 2.0)
    assert torch.allclose(z_new, 0.5 * torch.eye(4, dtype=torch.float64))
    assert torch.allclose(z_old, torch.full((4, 2), 0.25, dtype=torch.float64))
    c_new, c_old = reference(d_new, d_old, 0.5, "lp")
    assert torch.allclose(z_new, c_new, atol=1e-5) and torch.allclose(z_old, c_old, atol=1e-5)


def test_lp_gradient_is_zero():
    d_new, d_old = random_instance(6, 3, seed=8)
    d_new.requires_grad_(True)
    (grad,) = torch.autograd.grad(scalar_of(*solve_lp(d_new, d_old, 2.0)), d_new)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_simplex_projection_closed_form():
    z, support = project_simplex(torch.tensor([[0.5, 0.2, -1.0], [3.0, 0.0, 0.0], [0.1, 0.1, 0.1]]))
    assert torch.allclose(z, torch.tensor([[0.65, 0.35, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]))
    assert support.tolist() == [[True, True, False], [True, False, False], [True, True, True]]


def test_dispatch_and_bad_input():
    d_new, d_old = random_instance(6, 3, seed=9)
    for mode in ("qp", "lp"):
        fast = solve_facility(d_new, d_old, 0.5, mode)
        assert all(np.allclose(a.numpy(), c.numpy(), atol=1e-5)
                   for a, c in zip(fast, solve_facility(d_new, d_old, 0.5, mode, solver="cvxpylayers")))
    with pytest.raises(ValueError, match="solver must be one of"):
        solve_facility(d_new, d_old, 0.5, "qp", solver="scs")
    with pytest.raises(ValueError, match="mode must be one of"):
        solve_facility(d_new, d_old, 0.5, "sdp")
    with pytest.raises(ValueError, match="budget must be >= 0"):
        solve_qp(d_new, d_old, -1.0)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., B, B'\)"):
        solve_qp(d_new, d_old[:4], 1.0)
    with pytest.raises(ValueError, match="budget must be >= B"):
        solve_lp(d_new, d_old[:, :0], 3.0)
