"""An exact, batched, differentiable solver for HOST-CP's per-batch program (no generic cone solver).

The program of one mini-batch (Das et al., ECML PKDD 2021; see methods/hostcp/layer.py), with B incoming
points, B' old points, row i's variables z_i = [Z_new[i, :], Z_old[i, :]], its distances d_i = [D_new[i, :],
D_old[i, :]] and m the 0/1 vector of the new columns:

    minimise    sum_i <d_i, z_i>  [+ 1/2 sum_i ||z_i||^2   (QP; the smoothing gamma is folded into D)]
    subject to  z_i in the probability simplex (z_i >= 0, 1^T z_i = 1; the bound z <= 1 is then implied)
                sum_i <m, z_i> <= budget

Both solvers accept any real distances (large finite values for masked pairs), any leading batch shape
``(..., B, B)`` / ``(..., B, B')``, and a budget that is a number or a tensor of the batch shape. They work in
float64 and return the input dtype. ``B' = 0`` is allowed only with ``budget >= B`` (otherwise infeasible).

QP (``solve_qp``). Dualise the budget with mu >= 0: the rows decouple and
    z_i(mu) = P(-(d_i + mu m)),   P = Euclidean projection onto the simplex (sort, cumulative sums),
    g(mu) = sum_i <m, z_i(mu)>    (continuous, non-increasing, piecewise linear).
If g(0) <= budget then mu = 0; otherwise mu is the root of g(mu) = budget. On a piece (supports S_i fixed)
    z_ij = v_ij - t_i on S_i,  t_i = (sum_{S_i} v_ij - 1) / |S_i|,  v_i = -(d_i + mu m),
so g'(mu) = -sum_i n_i o_i / |S_i| (n_i, o_i: new and old columns in S_i). The root comes in closed form
from g's breakpoints (``_breakpoint_multiplier``: a row's new mass x fixes both of its thresholds, so each
row's breakpoints follow from two sorts and cumulative sums, and g at all of them from two more cumulative
sums); it is verified, |g(mu) - budget| <= 1e-10 (1 + budget), and where rounding defeats it a safeguarded
search takes over (a bracket [lo, hi], hi putting every new column out of every support; Newton from lo,
Newton from hi and bisection in turn; a Newton step from the root's piece lands on the root). Backward (the
implicit function theorem with the supports held fixed): with J_i = diag(s_i) - s_i s_i^T / |S_i| (s_i the
support indicator), dz_i = -J_i (dd_i + dmu m); while the budget is tight (mu > 0), sum_i m^T dz_i = 0 gives
dmu = -sum_i m^T J_i dd_i / C with C = sum_i m^T J_i m = sum_i n_i o_i / |S_i|. For an upstream gradient G,
    dL/dd_i = -J_i G_i + (sum_k m^T J_k G_k / C) J_i m     (the last term only while tight and C > 0).

LP (``solve_lp``). Within a row only the cheapest new column a_i = min_j D_new[i, j] and the cheapest old
column b_i = min_k D_old[i, k] matter, so the program is a fractional knapsack with unit weights: row i puts
x_i in [0, 1] of its mass on new columns (saving sigma_i = b_i - a_i per unit), subject to sum_i x_i <= budget.
The optimum fills the rows in decreasing order of positive saving. This needs no assumption on D_new (a zero
diagonal, i.e. self-coverage, is just the common case a_i = 0). Where the optimum is not unique the solver
returns a deterministic, symmetric point of the optimal face: a row's mass is split equally among its tied
cheapest new (old) columns, rows whose savings tie at the budget's edge share the remaining budget equally,
and rows with zero saving take no new mass. Ties are equalities up to a relative 1e-12. cvxpylayers
(Clarabel, an interior-point method) returns a point near the relative interior of the optimal face instead:
the two agree wherever the optimum is unique or the tie is symmetric (ties within one row, edge ties between
rows with the same tie pattern), and both are optimal otherwise (same objective).
Gradient: the LP's solution map is piecewise constant, so its derivative is zero almost everywhere, and the
fast LP returns exactly zero. cvxpylayers differentiates its interior-point solution instead, which gives a
tiny (norm ~1e-5 against ~1e-2 for the QP), solver-tolerance-driven gradient: an artefact of stopping the
barrier early, not information about the LP. Under Adam (scale-free) that artefact still moves phi at full
step size, while ``hostcp`` skips the selector step on an exactly zero gradient; so ``hostcp-lp`` with the
two backends differs in phi's trajectory (an artefact-driven walk versus phi kept at its initialisation),
not in the program it solves; benchmarks/hostcp_solver_quality.py measures the effect on quality.
"""

from __future__ import annotations

import torch

TOLERANCE = 1e-10  # |g(mu) - budget| <= TOLERANCE (1 + budget) ends the multiplier search
TIE_RTOL = 1e-12  # LP ties: equal up to this relative difference
MAX_ITERATIONS = 200  # safety cap; the bisection steps alone shrink the bracket by 2^-66 by then


def _as_problems(d_new: torch.Tensor, d_old: torch.Tensor, budget: float | torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate shapes and budget; flatten the batch to ``(P, B, .)`` float64 and the budget to ``(P,)``."""
    if d_new.dim() < 2 or d_new.shape[-1] != d_new.shape[-2]:
        raise ValueError(f"hostcp solver: d_new must have shape (..., B, B), got {tuple(d_new.shape)}")
    if d_old.dim() != d_new.dim() or d_old.shape[:-1] != d_new.shape[:-1]:
        raise ValueError(f"hostcp solver: d_old must have shape (..., B, B') matching d_new {tuple(d_new.shape)}, "
                         f"got {tuple(d_old.shape)}")
    b = d_new.shape[-1]
    batch = d_new.shape[:-2]
    budget_t = torch.as_tensor(budget, dtype=torch.float64).expand(batch).reshape(-1)
    if budget_t.numel() and bool((budget_t < 0).any()):
        raise ValueError(f"hostcp solver: budget must be >= 0, got {budget}")
    if d_old.shape[-1] == 0 and budget_t.numel() and bool((budget_t < b).any()):
        raise ValueError(f"hostcp solver: with no old columns every row needs new mass, so the budget must be "
                         f">= B = {b}, got {budget}")
    problems = budget_t.numel()
    return (d_new.detach().to(torch.float64).reshape(problems, b, b),
            d_old.detach().to(torch.float64).reshape(problems, b, d_old.shape[-1]), budget_t)


def project_simplex(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, support)``: the Euclidean projection of every row of ``v`` (last dim) onto the probability simplex.

    z = max(v - t, 0) with t = (sum of the rho largest v - 1) / rho, rho the largest k with
    v_(k) > (sum of the k largest - 1) / k (Held, Wolfe & Crowder 1974; Duchi et al. 2008).
    """
    u, _ = torch.sort(v, dim=-1, descending=True)
    k = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype)
    cumulative = u.cumsum(dim=-1) - 1
    rho = (u * k > cumulative).sum(dim=-1, keepdim=True)  # the condition holds exactly for k <= rho
    t = cumulative.gather(-1, rho - 1) / rho
    z = (v - t).clamp_min(0)
    return z, z > 0


def _budget_use(v0: torch.Tensor, is_new: torch.Tensor, mu: torch.Tensor, b: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(z, g, slope)`` at multipliers ``mu`` ``(P,)``: rows' projections, new mass g(mu) and g'(mu)."""
    z, support = project_simplex(v0 - mu[:, None, None] * is_new)
    g = z[..., :b].sum(dim=(-1, -2))
    size = support.sum(-1).to(v0.dtype)
    n_new = support[..., :b].sum(-1).to(v0.dtype)
    slope = -(n_new * (size - n_new) / size).sum(-1)
    return z, g, slope


def _inverse_mass(values: torch.Tensor, cumulative: torch.Tensor, knots: torch.Tensor, mass: torch.Tensor
                  ) -> torch.Tensor:
    """The threshold s with sum_j (values_j - s)_+ = mass, per row (values sorted descending, mass >= 0).

    ``knots`` are that sum at s = values_j (increasing); on the piece with j values above s,
    s = (sum of the j largest - mass) / j.
    """
    count = torch.searchsorted(knots, mass, right=True).clamp(1, values.shape[-1])
    return (cumulative.gather(-1, count - 1) - mass) / count


def _breakpoint_multiplier(d_new: torch.Tensor, d_old: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """The root of g(mu) = budget from the breakpoints of g, in closed form (no iteration).

    Row i's new mass x in [0, 1] fixes both thresholds: the new columns' s = F^-1(x) and the old columns'
    t = G^-1(1 - x), with F(s) = sum_j (a_j - s)_+ over a = -D_new[i], G likewise over -D_old[i]; so
    mu_i(x) = F^-1(x) - G^-1(1 - x) is decreasing and x_i(mu) is its piecewise-linear inverse, whose
    breakpoints are the knots of F (a column enters) and of 1 - G. g(mu) = B + sum_l ds_l (mu - m_l)_+ over
    all rows' breakpoints m_l with slope changes ds_l, so g at every breakpoint is two cumulative sums away,
    and the root lies on the piece where g crosses the budget.
    """
    new, _ = torch.sort(-d_new, dim=-1, descending=True)
    old, _ = torch.sort(-d_old, dim=-1, descending=True)
    new_sums, old_sums = new.cumsum(-1), old.cumsum(-1)
    new_knots = new_sums - torch.arange(1, new.shape[-1] + 1, dtype=new.dtype) * new  # F at a_j, increasing
    old_knots = old_sums - torch.arange(1, old.shape[-1] + 1, dtype=old.dtype) * old  # G at c_k
    x, _ = torch.sort(torch.cat([new_knots, 1 - old_knots], -1).clamp(0, 1), dim=-1, descending=True)
    mu = _inverse_mass(new, new_sums, new_knots, x) - _inverse_mass(old, old_sums, old_knots, 1 - x)
    mu = mu.cummax(-1).values  # increasing as x decreases (exactly, up to rounding)
    step = mu.diff(dim=-1)
    slope = torch.where(step > 0, x.diff(dim=-1) / step.clamp_min(1e-300), torch.zeros_like(step))
    slope_change = torch.diff(slope, dim=-1, prepend=torch.zeros_like(slope[..., :1]),
                              append=torch.zeros_like(slope[..., :1]))
    problems = mu.shape[0]
    knots, order = torch.sort(mu.reshape(problems, -1), dim=-1)
    change = slope_change.reshape(problems, -1).gather(-1, order)
    slopes = change.cumsum(-1)
    g = d_new.shape[-1] + slopes * knots - (change * knots).cumsum(-1)
    last = (g > budget[:, None]).sum(-1, keepdim=True).clamp(1, knots.shape[-1] - 1) - 1  # g(knot) > budget
    left, g_left, slope_left = knots.gather(-1, last), g.gather(-1, last), slopes.gather(-1, last)
    right = knots.gather(-1, last + 1)
    root = left + (g_left - budget[:, None]) / (-slope_left).clamp_min(1e-300)
    return torch.where(slope_left < 0, root.clamp(max=right), right).clamp_min(0).squeeze(-1)


def _multiplier(v0: torch.Tensor, is_new: torch.Tensor, budget: torch.Tensor, d_new: torch.Tensor,
                d_old: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, z)``: the budget multiplier of every problem (0 where the budget is slack) and the solution.

    The breakpoint formula gives mu directly; it is verified (g(mu) = budget to the tolerance) and, where
    rounding defeats it, refined by a safeguarded search: Newton from either end of a bracket, bisection.
    """
    b = d_new.shape[-1]
    zero = torch.zeros_like(budget)
    tolerance = TOLERANCE * (1 + budget)
    if d_old.shape[-1] == 0:  # the budget is then >= B (checked), hence slack
        return zero, _budget_use(v0, is_new, zero, b)[0]
    guess = torch.where(budget >= b, zero, _breakpoint_multiplier(d_new, d_old, budget))
    z, g, _ = _budget_use(v0, is_new, guess, b)
    done = ((g - budget).abs() <= tolerance) | ((guess == 0) & (g <= budget + tolerance))
    if bool(done.all()):
        return guess, z
    mu = torch.where(done, guess, zero)
    z_zero, g, slope = _budget_use(v0, is_new, zero, b)
    slack = ~done & (g <= budget + tolerance)
    z = torch.where(slack[:, None, None], z_zero, z)
    open_ = ~done & ~slack
    if not bool(open_.any()):
        return mu, z
    # at hi every new column sits at least 1 below the row's best old one, hence outside every support
    lo, g_lo, slope_lo = mu.clone(), g, slope
    hi = ((d_old.amin(-1) - d_new.amin(-1)).amax(-1) + 1).clamp_min(1.0)
    g_hi, slope_hi = torch.zeros_like(budget), torch.zeros_like(budget)
    for step in range(MAX_ITERATIONS):
        if step % 3 == 0:  # Newton from lo
            guess = lo + (g_lo - budget) / (-slope_lo).clamp_min(1e-300)
        elif step % 3 == 1:  # Newton from hi
            guess = hi - (budget - g_hi) / (-slope_hi).clamp_min(1e-300)
        else:
            guess = (lo + hi) / 2
        inside = (guess > lo) & (guess < hi)
        guess = torch.where(inside, guess, (lo + hi) / 2)
        guess = torch.where(open_, guess, mu)
        z_guess, g_guess, slope_guess = _budget_use(v0, is_new, guess, b)
        done = open_ & ((g_guess - budget).abs() <= tolerance)
        above = open_ & ~done & (g_guess > budget)
        below = open_ & ~done & (g_guess < budget)
        lo, g_lo, slope_lo = (torch.where(above, guess, lo), torch.where(above, g_guess, g_lo),
                              torch.where(above, slope_guess, slope_lo))
        hi, g_hi, slope_hi = (torch.where(below, guess, hi), torch.where(below, g_guess, g_hi),
                              torch.where(below, slope_guess, slope_hi))
        mu = torch.where(done, guess, mu)
        z = torch.where(done[:, None, None], z_guess, z)
        open_ = open_ & ~done
        if not bool(open_.any()):
            return mu, z
    # not reached in practice: the bracket is then below rounding; take its upper end (feasible)
    mu = torch.where(open_, hi, mu)
    z = torch.where(open_[:, None, None], _budget_use(v0, is_new, hi, b)[0], z)
    return mu, z


class _QP(torch.autograd.Function):
    """The QP's solution map with its exact active-set derivative (see the module docstring)."""

    @staticmethod
    def forward(ctx, d_new: torch.Tensor, d_old: torch.Tensor, budget: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = d_new.shape[-1]
        is_new = torch.zeros(b + d_old.shape[-1], dtype=torch.float64)
        is_new[:b] = 1
        mu, z = _multiplier(-torch.cat([d_new, d_old], dim=-1), is_new, budget, d_new, d_old)
        ctx.save_for_backward(z > 0, is_new, mu > 0)
        return z[..., :b], z[..., b:]

    @staticmethod
    def backward(ctx, grad_new: torch.Tensor, grad_old: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        support, is_new, tight = ctx.saved_tensors
        s = support.to(torch.float64)
        size = s.sum(-1, keepdim=True)
        grad = torch.cat([grad_new, grad_old], dim=-1)
        j_grad = s * (grad - (s * grad).sum(-1, keepdim=True) / size)  # J_i G_i
        n_new = (s * is_new).sum(-1, keepdim=True)
        j_m = s * (is_new - n_new / size)  # J_i m
        curvature = (n_new * (size - n_new) / size).sum(dim=(-1, -2))  # C
        coefficient = torch.where(tight & (curvature > 0), (j_grad * is_new).sum(dim=(-1, -2))
                                  / curvature.clamp_min(1e-300), torch.zeros_like(curvature))
        grad_d = -j_grad + coefficient[:, None, None] * j_m
        b = grad_new.shape[-1]
        return grad_d[..., :b], grad_d[..., b:], None


def solve_qp(d_new: torch.Tensor, d_old: torch.Tensor, budget: float | torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Z_new, Z_old)`` minimising ``<D, Z> + 1/2 ||Z||^2`` over row simplices with ``sum(Z_new) <= budget``.

    ``d_new`` ``(..., B, B)`` and ``d_old`` ``(..., B, B')`` are the distances already divided by the smoothing
    gamma; differentiable in both (exact active-set derivative).
    """
    flat_new, flat_old, budget_t = _as_problems(d_new, d_old, budget)
    if d_new.requires_grad or d_old.requires_grad:  # route the gradient through the Function
        flat_new = d_new.to(torch.float64).reshape(flat_new.shape)
        flat_old = d_old.to(torch.float64).reshape(flat_old.shape)
    z_new, z_old = _QP.apply(flat_new, flat_old, budget_t)
    return z_new.reshape(d_new.shape).to(d_new.dtype), z_old.reshape(d_old.shape).to(d_new.dtype)


def _ties(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(minimum, mask)`` along the last dim; the mask marks the entries tied with the minimum."""
    low = d.amin(-1, keepdim=True)
    return low.squeeze(-1), d - low <= TIE_RTOL * torch.maximum(low.abs(), torch.ones_like(low))


class _LP(torch.autograd.Function):
    """The LP's solution map; its derivative is zero almost everywhere and is returned as exactly zero."""

    @staticmethod
    def forward(ctx, d_new: torch.Tensor, d_old: torch.Tensor, budget: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cheapest_new, new_ties = _ties(d_new)
        if d_old.shape[-1]:
            cheapest_old, old_ties = _ties(d_old)
        else:
            cheapest_old, old_ties = torch.full_like(cheapest_new, torch.inf), d_old.bool()
        saving = cheapest_old - cheapest_new  # (P, B)
        scale = TIE_RTOL * torch.maximum(saving.abs(), torch.ones_like(saving))
        gap = saving[:, None, :] - saving[:, :, None]  # gap[p, i, k] = saving_k - saving_i
        above = (gap > scale[:, :, None]).sum(-1)  # rows strictly better than row i
        tied = (gap.abs() <= scale[:, :, None]).sum(-1)  # rows tied with row i (itself included)
        share = ((budget[:, None] - above) / tied).clamp(0, 1)
        x = torch.where(saving > scale, share, torch.zeros_like(share))
        x = torch.where(torch.isinf(saving), torch.ones_like(x), x)  # no old column: all mass on new ones
        new_ties, old_ties = new_ties.to(torch.float64), old_ties.to(torch.float64)
        z_new = x[..., None] * new_ties / new_ties.sum(-1, keepdim=True)
        z_old = (1 - x)[..., None] * old_ties / old_ties.sum(-1, keepdim=True).clamp_min(1)
        return z_new, z_old

    @staticmethod
    def backward(ctx, grad_new: torch.Tensor, grad_old: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return torch.zeros_like(grad_new), torch.zeros_like(grad_old), None


def solve_lp(d_new: torch.Tensor, d_old: torch.Tensor, budget: float | torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Z_new, Z_old)`` minimising ``<D, Z>`` over row simplices with ``sum(Z_new) <= budget`` (exact).

    Shapes as in ``solve_qp``. Ties are resolved deterministically and symmetrically (module docstring); the
    returned gradient is exactly zero (the LP's derivative almost everywhere).
    """
    flat_new, flat_old, budget_t = _as_problems(d_new, d_old, budget)
    if d_new.requires_grad or d_old.requires_grad:
        flat_new = d_new.to(torch.float64).reshape(flat_new.shape)
        flat_old = d_old.to(torch.float64).reshape(flat_old.shape)
    z_new, z_old = _LP.apply(flat_new, flat_old, budget_t)
    return z_new.reshape(d_new.shape).to(d_new.dtype), z_old.reshape(d_old.shape).to(d_new.dtype)
