"""HOST-CP's convex program as a differentiable layer (cvxpylayers), built once per shape and cached.

The relaxed online facility-location problem of one mini-batch (Das et al., ECML PKDD 2021), with
B incoming points and B' already-selected ones:

    minimise    <D_new, Z_new> + <D_old, Z_old>  [+ (gamma / 2) (||Z_new||^2 + ||Z_old||^2)   if mode="qp"]
    subject to  0 <= Z_new, Z_old <= 1
                Z_new 1 + Z_old 1 = 1                (every incoming point is covered)
                sum(Z_new) <= fraction * B            (budget for new representatives)

The LP (``mode="lp"``) is the paper's program; its solution map is piecewise constant, so its derivative
is zero almost everywhere. The QP (``mode="qp"``) adds the strongly convex term, which makes the solution
unique and differentiable. To keep one compiled problem per shape (and the problem DPP), the QP is
solved in the equivalent form with the distances divided by gamma:
``<D/gamma, Z> + 1/2 ||Z||^2``; the caller passes ``D / gamma``.

``solve_facility`` dispatches to the exact, specialised solver of methods/hostcp/solver.py (``solver="fast"``,
the default) or to cvxpylayers (``solver="cvxpylayers"``, the generic reference it is tested against).
"""

from __future__ import annotations

from functools import lru_cache

import cvxpy as cp
import torch
from cvxpylayers.torch import CvxpyLayer

from valbench.methods.hostcp.solver import solve_lp, solve_qp

MODES = ("lp", "qp")
SOLVERS = ("fast", "cvxpylayers")
SOLVER_ARGS = {"solve_method": "Clarabel"}


def check_program(fraction: float, mode: str) -> None:
    """Reject an unknown mode or a budget fraction outside (0, 1]."""
    if mode not in MODES:
        raise ValueError(f"hostcp layer: mode must be one of {MODES}, got {mode!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"hostcp layer: fraction must lie in (0, 1], got {fraction}")


def build_problem(n_new: int, n_old: int, fraction: float, mode: str) -> tuple[cp.Problem, list, list]:
    """The cvxpy problem with parameters ``[D_new, D_old]`` and variables ``[Z_new, Z_old]``."""
    check_program(fraction, mode)
    if n_old < 1 and fraction < 1:
        raise ValueError("hostcp layer: with no old points the budget makes the problem infeasible; "
                         "pad D_old with far-away dummy columns")
    d_new = cp.Parameter((n_new, n_new), name="D_new")
    d_old = cp.Parameter((n_new, n_old), name="D_old")
    z_new = cp.Variable((n_new, n_new), name="Z_new")
    z_old = cp.Variable((n_new, n_old), name="Z_old")
    objective = cp.sum(cp.multiply(d_new, z_new)) + cp.sum(cp.multiply(d_old, z_old))
    if mode == "qp":
        objective = objective + 0.5 * (cp.sum_squares(z_new) + cp.sum_squares(z_old))
    constraints = [z_new >= 0, z_new <= 1, z_old >= 0, z_old <= 1,
                   cp.sum(z_new, axis=1) + cp.sum(z_old, axis=1) == 1,
                   cp.sum(z_new) <= fraction * n_new]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    assert problem.is_dpp(), "hostcp layer: the program must be DPP for cvxpylayers"
    return problem, [d_new, d_old], [z_new, z_old]


@lru_cache(maxsize=32)
def facility_layer(n_new: int, n_old: int, fraction: float, mode: str) -> CvxpyLayer:
    """The cached ``CvxpyLayer`` mapping ``(D_new, D_old)`` (optionally batched) to ``(Z_new, Z_old)``."""
    problem, parameters, variables = build_problem(n_new, n_old, fraction, mode)
    return CvxpyLayer(problem, parameters=parameters, variables=variables)


def solve_facility(d_new: torch.Tensor, d_old: torch.Tensor, fraction: float, mode: str, solver: str = "fast"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve the program for ``D_new`` ``(..., B, B)`` and ``D_old`` ``(..., B, B')`` (already divided by gamma
    for the QP) with the budget ``fraction * B``; differentiable w.r.t. both. Computed in float64, returned in
    the input dtype. ``solver``: "fast" (methods/hostcp/solver.py) or "cvxpylayers" (the reference)."""
    if solver == "fast":
        check_program(fraction, mode)
        solve = solve_qp if mode == "qp" else solve_lp
        return solve(d_new, d_old, fraction * d_new.shape[-1])
    if solver != "cvxpylayers":
        raise ValueError(f"hostcp layer: solver must be one of {SOLVERS}, got {solver!r}")
    layer = facility_layer(d_new.shape[-1], d_old.shape[-1], float(fraction), mode)
    z_new, z_old = layer(d_new.double(), d_old.double(), solver_args=SOLVER_ARGS)
    return z_new.to(d_new.dtype), z_old.to(d_new.dtype)
