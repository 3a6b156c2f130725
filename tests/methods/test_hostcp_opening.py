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
