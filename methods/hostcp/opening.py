"""The facility-location program with opening variables: an exact solve and its exact derivative.

``hostcp-fl``'s per-batch program (methods/hostcp/variants.py). With B incoming points, B' already-selected
ones (open for free) and the distances divided by the smoothing gamma (``d_new`` ``(B, B)``, ``d_old``
``(B, B')``):

    minimise    <D_new, Z_new> + <D_old, Z_old> + 1/2 (||Z_new||^2 + ||Z_old||^2 + ||u||^2)
    subject to  Z_new, Z_old >= 0,   Z_new 1 + Z_old 1 = 1          (every incoming point is covered)
                Z_new[i, j] <= u_j,  0 <= u <= 1,  sum(u) <= budget   (only opened points represent others)

It is the relaxation of k-median (facility location) with k = budget: opening j costs budget whatever it
covers, so the optimum opens points that cover many others, not outliers that cover only themselves (the
paper's program, methods/hostcp/layer.py, has no u, and its budget bounds the Z_new mass instead).

Solve (``solver="fast"``): Clarabel (interior point, to ~1e-9) on a working set of entries (each row's 16
nearest columns, grown by column generation until the row multipliers certify that no left-out entry would
enter a support: ``screened_solve``, exact, 2-3x faster than the full program), then, where a derivative is
wanted, the KKT system restricted to the solution's active sets is re-solved in torch. On those sets the
solution is affine in D: with tau_i the row multipliers, mu the budget multiplier, F_i / C_i the free /
capped new entries of row i, O_i the positive old entries and U the u strictly inside (0, 1):

    z_ij = -d_ij - tau_i (j in F_i or O_i),   z_ij = u_j (j in C_i),
    row i:       sum_{F_i, O_i} (-d_ij - tau_i) + sum_{C_i} u_j = 1
    u_j, j in U: u_j = sum_{i: j in C_i} (-d_ij - tau_i - u_j) - mu
    budget (when tight): sum_U u_j + |{u_j = 1}| = budget

so (tau, u_U, mu) = A^-1 b(D) with A fixed by the active sets, and autograd through that linear map is the
derivative of the solution (implicit differentiation of the KKT conditions on the piece). The values
returned are Clarabel's; the derivative is the re-solve's. Where a row's mass sits wholly on capped
entries its multiplier tau_i is not unique (the program is degenerate there): the least-norm solution
of the system is used, and the derivative is one element of the generalised Jacobian. Measured against
cvxpylayers (tests/methods/test_hostcp_opening.py): solutions to 1e-4 (cvxpylayers stops there; this
solution has the lower objective), gradients to a relative 1e-2 or better. ``solver="cvxpylayers"`` is the reference (10-30x slower).
"""

from __future__ import annotations

from functools import lru_cache

import clarabel
import cvxpy as cp
import numpy as np
import scipy.sparse as sp
import torch
from cvxpylayers.torch import CvxpyLayer

SOLVERS = ("fast", "cvxpylayers")
ACTIVE_TOL = 1e-7  # an entry within this of a bound is on it (Clarabel solves to ~1e-9)


def check_shapes(d_new: torch.Tensor, d_old: torch.Tensor, budget: float) -> None:
    b = d_new.shape[-1]
    if d_new.shape[-2:] != (b, b) or d_old.shape[-2] != b or d_old.shape[-1] < 1:
        raise ValueError(f"hostcp opening layer: d_new must be (B, B) and d_old (B, B' >= 1), got "
                         f"{tuple(d_new.shape)} and {tuple(d_old.shape)}")
    if not 0 < budget <= b:
        raise ValueError(f"hostcp opening layer: budget must lie in (0, B={b}], got {budget}")


def build_problem(n_new: int, n_old: int) -> tuple[cp.Problem, list, list]:
    """The cvxpy problem (the reference): parameters ``[D_new, D_old, budget]``, variables ``[Z_new, Z_old, u]``."""
    d_new, d_old = cp.Parameter((n_new, n_new), name="D_new"), cp.Parameter((n_new, n_old), name="D_old")
    budget = cp.Parameter(nonneg=True, name="budget")
    z_new, z_old, u = cp.Variable((n_new, n_new)), cp.Variable((n_new, n_old)), cp.Variable(n_new)
    objective = (cp.sum(cp.multiply(d_new, z_new)) + cp.sum(cp.multiply(d_old, z_old))
                 + 0.5 * (cp.sum_squares(z_new) + cp.sum_squares(z_old) + cp.sum_squares(u)))
    constraints = [z_new >= 0, z_old >= 0, cp.sum(z_new, axis=1) + cp.sum(z_old, axis=1) == 1,
                   z_new <= np.ones((n_new, 1)) @ cp.reshape(u, (1, n_new), order="C"),
                   u >= 0, u <= 1, cp.sum(u) <= budget]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    assert problem.is_dpp(), "hostcp opening layer: the program must be DPP for cvxpylayers"
    return problem, [d_new, d_old, budget], [z_new, z_old, u]


@lru_cache(maxsize=8)
def reference_layer(n_new: int, n_old: int) -> CvxpyLayer:
    problem, parameters, variables = build_problem(n_new, n_old)
    return CvxpyLayer(problem, parameters=parameters, variables=variables)


@lru_cache(maxsize=64)
def conic_form(n_new: int, n_old: int) -> tuple[sp.csc_matrix, sp.csc_matrix, np.ndarray, list]:
    """``(P, A, b, cones)`` of the program for Clarabel, variables ``x = [vec(Z) row-major, u]``.

    Rows of A: B equalities (row sums), then the nonnegative cone: -Z <= 0, Z_new - u <= 0, -u <= 0,
    u <= 1, sum(u) <= budget (the last entry of b, set per call).
    """
    b, m = n_new, n_new + n_old
    nz = b * m
    eye_z = sp.identity(nz, format="csr")
    rows = sp.kron(sp.identity(b), np.ones((1, m)))
    new_entries = (np.arange(nz) % m) < b  # Z entries in a new column
    pick_new = eye_z[new_entries]
    col_of_new = sp.csr_matrix((np.ones(b * b), (np.arange(b * b), np.tile(np.arange(b), b))), shape=(b * b, b))
    zero_u = sp.csr_matrix((nz, b))
    a = sp.vstack([
        sp.hstack([rows, sp.csr_matrix((b, b))]),
        sp.hstack([-eye_z, zero_u]),
        sp.hstack([pick_new, -col_of_new]),
        sp.hstack([sp.csr_matrix((b, nz)), -sp.identity(b)]),
        sp.hstack([sp.csr_matrix((b, nz)), sp.identity(b)]),
        sp.hstack([sp.csr_matrix((1, nz)), np.ones((1, b))]),
    ]).tocsc()
    rhs = np.concatenate([np.ones(b), np.zeros(nz + b * b + b), np.ones(b), [0.0]])
    cones = [clarabel.ZeroConeT(b), clarabel.NonnegativeConeT(nz + b * b + 2 * b + 1)]
    return sp.identity(nz + b, format="csc"), a, rhs, cones


def clarabel_solve(d_new: np.ndarray, d_old: np.ndarray, budget: float, tol: float = 1e-10
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(Z, u)`` of one program by Clarabel (Z is ``(B, B + B')``, new columns first)."""
    n_new, n_old = d_old.shape[0], d_old.shape[1]
    p, a, rhs, cones = conic_form(n_new, n_old)
    rhs = rhs.copy()
    rhs[-1] = budget
    q = np.concatenate([np.concatenate([d_new, d_old], axis=1).ravel(), np.zeros(n_new)])
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
    solution = clarabel.DefaultSolver(p, q, a, rhs, cones, settings).solve()
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        raise RuntimeError(f"hostcp opening layer: Clarabel returned {solution.status}")
    x = np.asarray(solution.x)
    return x[:-n_new].reshape(n_new, n_new + n_old), x[-n_new:]


SCREEN_NEAREST = 16  # the first working set: each row's 16 nearest columns
SCREEN_MARGIN = 1.0  # a round adds every left-out entry within this of entering its row's support
SCREEN_ROUNDS = 4  # then the full program (not seen in the tests)


def working_set_solve(d: np.ndarray, n_new: int, budget: float, keep: np.ndarray, tol: float = 1e-10
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Z, u, tau)``: the program with every entry outside ``keep`` fixed at 0, by Clarabel; ``tau`` are the
    row multipliers (the duals of the row equalities: z_ij = clip(-d_ij - tau_i, 0, u_j) on free entries)."""
    b = n_new
    rows, cols = np.nonzero(keep)
    ne = len(rows)
    new = np.flatnonzero(cols < b)
    nn = len(new)
    ones = np.ones
    e, k = np.arange(ne), np.arange(b)
    # constraint rows in order: row sums (b), -Z <= 0 (ne), Z_new - u <= 0 (nn), -u <= 0, u <= 1 (b each), sum(u)
    r_cap, r_u = b + ne, b + ne + nn
    a = sp.csc_matrix((np.concatenate([ones(ne), -ones(ne), ones(nn), -ones(nn), -ones(b), ones(b), ones(b)]),
                       (np.concatenate([rows, b + e, r_cap + np.arange(nn), r_cap + np.arange(nn), r_u + k,
                                        r_u + b + k, np.full(b, r_u + 2 * b)]),
                        np.concatenate([e, e, new, ne + cols[new], ne + k, ne + k, ne + k]))),
                      shape=(r_u + 2 * b + 1, ne + b))
    rhs = np.concatenate([ones(b), np.zeros(ne + nn + b), ones(b), [budget]])
    cones = [clarabel.ZeroConeT(b), clarabel.NonnegativeConeT(ne + nn + 2 * b + 1)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
    solution = clarabel.DefaultSolver(sp.identity(ne + b, format="csc"), np.concatenate([d[rows, cols], np.zeros(b)]),
                                      a, rhs, cones, settings).solve()
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        raise RuntimeError(f"hostcp opening layer: Clarabel returned {solution.status}")
    x = np.asarray(solution.x)
    z = np.zeros_like(d)
    z[rows, cols] = x[:ne]
    return z, x[ne:], np.asarray(solution.z)[:b]


def screened_solve(d_new: np.ndarray, d_old: np.ndarray, budget: float) -> tuple[np.ndarray, np.ndarray, int]:
    """``(Z, u, rounds)``: the exact solution through a small working set of entries (column generation).

    Entries outside the working set (at first each row's ``SCREEN_NEAREST`` nearest columns and its nearest old
    one, which keeps the restricted program feasible) are fixed at 0; the restricted optimum is the full one exactly when no
    left-out entry would enter its row's support, i.e. -d_ij - tau_i <= 0 for every left-out (i, j) with tau the
    restricted problem's row multipliers (then its KKT point, with zero cap multipliers on the left-out entries,
    satisfies every KKT condition of the full program). Rows rarely reach beyond their 16 nearest columns at the
    smoothing used, so the restricted program has about a fifth of the variables and Clarabel solves it 2-3x
    faster. A certificate that fails adds every left-out entry within ``SCREEN_MARGIN`` of entering and solves
    again; after ``SCREEN_ROUNDS`` rounds the full program is solved.
    """
    d = np.concatenate([d_new, d_old], axis=1)
    b, m = d.shape
    keep = np.zeros((b, m), dtype=bool)
    np.put_along_axis(keep, np.argsort(d, axis=1)[:, :SCREEN_NEAREST], True, axis=1)
    keep[np.arange(b), b + d_old.argmin(1)] = True  # an uncapped column per row: the restriction stays feasible
    for rounds in range(SCREEN_ROUNDS):
        if keep.all():
            break
        z, u, tau = working_set_solve(d, b, budget, keep)
        reduced_cost = -d - tau[:, None]
        if not (reduced_cost[~keep] > 1e-9).any():
            return z, u, rounds
        keep |= reduced_cost > -SCREEN_MARGIN
    z, u = clarabel_solve(d_new, d_old, budget)
    return z, u, SCREEN_ROUNDS


def solve_linear(a: np.ndarray, rhs: torch.Tensor) -> torch.Tensor:
    """x with A x = rhs, differentiable in ``rhs`` (A is fixed by the active sets).

    A row multiplier tau_i that appears in no equation (a row whose mass sits wholly on points opened at
    u = 1) moves nothing in the solution: it is set to 0. Torch's LAPACK (its thread setting, not numpy's).
    """
    used = np.flatnonzero(np.abs(a).sum(0) > 0)
    a_used = torch.as_tensor(a[np.ix_(used, used)], dtype=rhs.dtype)
    x = torch.zeros_like(rhs)
    try:
        part = torch.linalg.solve(a_used, rhs[used])
        if not torch.isfinite(part).all():
            raise RuntimeError("non-finite")
    except RuntimeError:  # a degenerate active set: the least-norm solution
        part = torch.linalg.pinv(a_used) @ rhs[used]
    return x.index_put((torch.as_tensor(used),), part)


def resolve_on_active_sets(d: torch.Tensor, z: np.ndarray, u: np.ndarray, budget: float, tol: float = ACTIVE_TOL
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The solution as the affine map of ``d`` (``(B, B + B')``) fixed by the active sets of ``(z, u)``
    (entries within ``tol`` of a bound are on it).

    Returns ``(Z, u, tau, mu)`` as torch tensors differentiable in ``d`` (see the module docstring).
    """
    b, m = d.shape
    u_t = torch.as_tensor(u, dtype=d.dtype)
    cap = np.concatenate([np.where(u > tol, u, 0.0), np.full(m - b, np.inf)])
    positive = z > tol
    capped = positive & (z >= cap[None, :] - tol) & (np.arange(m) < b)[None, :]
    free = positive & ~capped
    u_free = (u > tol) & (u < 1 - tol)
    u_one = u >= 1 - tol
    tight = abs(u.sum() - budget) < 1e-6 and u_free.any()
    free_idx = np.flatnonzero(u_free)
    nf = len(free_idx)
    n_unknowns = b + nf + int(tight)
    a = np.zeros((n_unknowns, n_unknowns))
    rhs_const = np.zeros(n_unknowns)
    cap_free = capped[:, free_idx]  # (B, nf): row i capped at free u_j
    # rows: -|F_i + O_i| tau_i + sum_{C_i, u free} u_j = 1 - |C_i, u at one| + sum_{F_i, O_i} d_ij
    a[np.arange(b), np.arange(b)] = -free.sum(1)
    a[:b, b:b + nf] = cap_free
    rhs_const[:b] = 1.0 - (capped[:, :b] & u_one[None, :]).sum(1)
    # free u_j: (1 + n_j) u_j + sum_{i: j in C_i} tau_i + mu = -sum_{i: j in C_i} d_ij
    a[b:b + nf, :b] = cap_free.T
    a[b + np.arange(nf), b + np.arange(nf)] = 1.0 + cap_free.sum(0)
    if tight:  # and sum_U u_j = budget - |u at one|
        a[b:b + nf, -1] = 1.0
        a[-1, b:b + nf] = 1.0
        rhs_const[-1] = budget - u_one.sum()
    free_t = torch.as_tensor(free, dtype=d.dtype)
    cap_free_t = torch.as_tensor(cap_free, dtype=d.dtype)
    rhs_d = torch.cat([(free_t * d).sum(1), -(cap_free_t * d[:, torch.as_tensor(free_idx, dtype=torch.long)]).sum(0),
                       torch.zeros(int(tight), dtype=d.dtype)])
    rhs = torch.as_tensor(rhs_const, dtype=d.dtype) + rhs_d
    sol = solve_linear(a, rhs)
    tau = sol[:b]
    u_new = torch.where(torch.as_tensor(u_one), torch.ones_like(u_t), torch.zeros_like(u_t))
    if nf:
        u_new = u_new.index_put((torch.as_tensor(free_idx),), sol[b:b + nf])
    z_free = (-d - tau[:, None]) * free_t
    u_cols = torch.cat([u_new, torch.zeros(m - b, dtype=d.dtype)])
    z_cap = u_cols[None, :] * torch.as_tensor(capped, dtype=d.dtype)
    mu = sol[-1] if tight else torch.zeros((), dtype=d.dtype)
    return z_free + z_cap, u_new, tau, mu


def solve_opening(d_new: torch.Tensor, d_old: torch.Tensor, budget: float, solver: str = "fast"
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(Z_new, Z_old, u)`` of the opening program for one batch (distances already divided by gamma).

    Differentiable w.r.t. ``d_new`` and ``d_old``; computed in float64, returned in the input dtype.
    """
    if solver not in SOLVERS:
        raise ValueError(f"hostcp opening layer: solver must be one of {SOLVERS}, got {solver!r}")
    check_shapes(d_new, d_old, budget)
    b = d_new.shape[-1]
    if solver == "cvxpylayers":
        layer = reference_layer(b, d_old.shape[-1])
        z_new, z_old, u = layer(d_new.double(), d_old.double(), torch.tensor(float(budget), dtype=torch.float64),
                                solver_args={"solve_method": "Clarabel"})
        return z_new.to(d_new.dtype), z_old.to(d_new.dtype), u.to(d_new.dtype)
    d = torch.cat([d_new, d_old], dim=1).double()
    d_np = d.detach().numpy()
    z, u, _ = screened_solve(d_np[:, :b], d_np[:, b:], float(budget))
    if not d.requires_grad:  # no derivative wanted (the readout, a frozen phi): skip the active-set re-solve
        z_t, u_t = torch.as_tensor(z), torch.as_tensor(u)
        return z_t[:, :b].to(d_new.dtype), z_t[:, b:].to(d_new.dtype), u_t.to(d_new.dtype)
    z_piece, u_piece, _, _ = resolve_on_active_sets(d, z, u, float(budget))
    # values: the interior-point solution (to ~1e-9); derivative: the active-set map's
    z_t = torch.as_tensor(z) + (z_piece - z_piece.detach())
    u_t = torch.as_tensor(u) + (u_piece - u_piece.detach())
    return z_t[:, :b].to(d_new.dtype), z_t[:, b:].to(d_new.dtype), u_t.to(d_new.dtype)
