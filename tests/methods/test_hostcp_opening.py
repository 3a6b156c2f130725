import numpy as np
import pytest
import torch

from valbench.methods.hostcp.layer import solve_facility
from valbench.methods.hostcp.opening import solve_opening


def distances(b: int, b_old: int, seed: int, scale: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b + b_old, 3, generator=g, dtype=torch.float64)
    d = torch.cdist(f, f) / scale
    return d[:b, :b], d[:b, b:]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_layer_matches_cvxpylayers_in_value_and_gradient(seed):
    b, b_old, budget = 8, 4, 2.0
    d_new, d_old = distances(b, b_old, seed)
    weights = torch.linspace(0.5, 2.0, b, dtype=torch.float64)
    results = {}
    for solver in ("fast", "cvxpylayers"):
        dn, do = d_new.clone().requires_grad_(True), d_old.clone().requires_grad_(True)
        z_new, z_old, u = solve_opening(dn, do, budget, solver)
        loss = (weights * z_new.sum(0) ** 2).sum() + (weights * u).sum() + z_old.sum(0).pow(2).sum()
        results[solver] = (z_new.detach(), z_old.detach(), u.detach(), *torch.autograd.grad(loss, [dn, do]))
    fast, ref = results["fast"], results["cvxpylayers"]
    for a, b_ in zip(fast[:3], ref[:3]):  # cvxpylayers stops its interior point at ~1e-5..1e-4 here
        assert torch.allclose(a, b_, atol=1e-4)
    objective = {k: float((d_new * z[0]).sum() + (d_old * z[1]).sum() + 0.5 * sum((t ** 2).sum() for t in z[:3]))
                 for k, z in results.items()}
    assert objective["fast"] <= objective["cvxpylayers"] + 1e-9  # and the fast solution is the better one
    for a, b_ in zip(fast[3:], ref[3:]):
        assert (a - b_).norm() <= 1e-2 * b_.norm()


def test_fast_layer_is_feasible():
    b, b_old, budget = 12, 5, 3.0
    z_new, z_old, u = (t.numpy() for t in solve_opening(*distances(b, b_old, 3), budget))
    tol = 1e-7
    assert z_new.min() >= -tol and z_old.min() >= -tol and u.min() >= -tol and u.max() <= 1 + tol
    assert np.allclose(z_new.sum(1) + z_old.sum(1), 1, atol=tol)
    assert (z_new <= u[None, :] + tol).all() and u.sum() <= budget + tol


def test_fast_layer_gradient_matches_finite_differences():
    d_new, d_old = distances(6, 3, 4, scale=2.0)  # strong smoothing: most entries inside their bounds
    weights = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)

    def objective(dn):
        z_new, _, u = solve_opening(dn, d_old, 1.5)
        return (weights * z_new.sum(0) ** 2).sum() + (weights * u ** 2).sum()

    check = dict(eps=1e-6, atol=1e-4, rtol=1e-3, raise_exception=False)
    assert torch.autograd.gradcheck(objective, (d_new.clone().requires_grad_(True),), **check)


def test_opening_picks_a_cluster_where_the_paper_program_picks_the_outlier():
    """Cluster A (already represented by an old point), cluster B and one outlier, budget 1: opening
    variables open a point of B (it covers five); the paper's program (free self-coverage, a budget on the
    Z_new mass) spends the budget on the outlier covering itself (k-centre behaviour)."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(5, 2, generator=g) * 0.1, torch.randn(5, 2, generator=g) * 0.1 + 4.0,
                   torch.tensor([[10.0, 10.0]])]).double()
    old = torch.zeros(1, 2, dtype=torch.float64)  # the centre of A, selected earlier
    d, d_old = torch.cdist(x, x), torch.cdist(x, old)
    scale = 0.05 * d.mean()
    _, _, u = solve_opening(d / scale, d_old / scale, 1.0)
    assert 5 <= int(u.argmax()) < 10
    z_paper, _ = solve_facility(d, d_old, 1.0 / 11, "lp")
    assert int(z_paper.sum(0).argmax()) == 10


def test_bad_shapes_and_budget_are_named():
    d_new, d_old = distances(4, 2, 0)
    with pytest.raises(ValueError, match="budget"):
        solve_opening(d_new, d_old, 0.0)
    with pytest.raises(ValueError, match="d_old"):
        solve_opening(d_new, d_old[:3], 1.0)
    with pytest.raises(ValueError, match="solver"):
        solve_opening(d_new, d_old, 1.0, "scs")


@pytest.mark.parametrize("b, b_old, budget, scale, seed", [(64, 16, 6.0, 0.1, 0), (64, 16, 6.0, 0.1, 1),
                                                           (40, 16, 3.0, 0.05, 2), (30, 16, 29.0, 0.1, 3),
                                                           (24, 8, 2.0, 1.0, 4)])
def test_screened_solve_is_the_full_program_optimum(b, b_old, budget, scale, seed):
    """The working-set (column generation) solve against Clarabel on the whole program: the same optimum
    (objective to 1e-7 relative; solutions to the interior point's accuracy), with its certificate checked."""
    from valbench.methods.hostcp import opening

    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b + b_old, 5, generator=g, dtype=torch.float64)
    d = torch.cdist(f, f)
    d = (d / (scale * d[:b, :b].sum() / (b * (b - 1))))[:b].numpy()
    z, u, _ = opening.screened_solve(d[:, :b], d[:, b:], budget)
    z_ref, u_ref = opening.clarabel_solve(d[:, :b], d[:, b:], budget)

    def objective(z_, u_):
        return (d * z_).sum() + 0.5 * ((z_ ** 2).sum() + (u_ ** 2).sum())

    assert abs(objective(z, u) - objective(z_ref, u_ref)) <= 1e-7 * abs(objective(z_ref, u_ref))
    assert np.abs(z - z_ref).max() < 1e-4 and np.abs(u - u_ref).max() < 1e-4
    assert np.allclose(z.sum(1), 1, atol=1e-8) and u.sum() <= budget + 1e-8 and (z[:, :b] <= u + 1e-8).all()


def test_screened_solve_grows_its_working_set_and_falls_back(monkeypatch):
    from valbench.methods.hostcp import opening

    d_new, d_old = (t.numpy() for t in distances(20, 6, 5, scale=1.0))  # strong smoothing: wide supports
    z_ref, u_ref = opening.clarabel_solve(d_new, d_old, 4.0)
    monkeypatch.setattr(opening, "SCREEN_NEAREST", 2)
    z, u, rounds = opening.screened_solve(d_new, d_old, 4.0)
    assert 0 < rounds < opening.SCREEN_ROUNDS and np.abs(z - z_ref).max() < 1e-4
    monkeypatch.setattr(opening, "SCREEN_ROUNDS", 1)  # no second round allowed: the full program
    z, u, rounds = opening.screened_solve(d_new, d_old, 4.0)
    assert rounds == 1 and np.array_equal(z, z_ref) and np.array_equal(u, u_ref)
