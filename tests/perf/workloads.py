"""The fixed workloads of the runtime-regression gate: one per native method, and the learner's fit.

Each workload is small (well under a second per call here) and fully determined: fixed data, fixed
hyper-parameters, and for the sampling methods a fixed amount of work (tmc-shapley and beta-shapley run
exactly ``max_permutations`` permutations: ``window`` is larger, so the convergence stop never fires). Every
workload's method must be registered and every native method must have a workload
(``test_every_native_method_has_a_workload``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from valbench.learners import make_learner
from valbench.protocol import Dataset
from valbench.registry import METHODS
from tests.conftest import blobs


@dataclass(frozen=True)
class Workload:
    """``name`` keys the baseline; ``method`` is the registry name (None for a learner-only workload)."""

    name: str
    method: str | None
    data: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    learner: str = "logreg"
    learner_params: dict[str, Any] = field(default_factory=dict)
    component: Callable[[], Callable[[], Any]] | None = None  # a component's workload instead of a fit

    def describe(self) -> str:
        if self.component is not None:
            return (self.component.__doc__ or self.component.__name__).strip()
        data = ", ".join(f"{k}={v}" for k, v in self.data.items())
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.method or self.learner + '.fit'}({params}) on blobs({data})"

    def build(self) -> Callable[[], Any]:
        """A zero-argument callable doing the timed work once; data and method are built outside the timing."""
        if self.component is not None:
            return self.component()
        data: Dataset = blobs(**self.data)
        learner = make_learner(self.learner, data.n_features, data.n_classes, seed=0, **self.learner_params)
        if self.method is None:
            return lambda: learner.fit(data.x_train, data.y_train)
        method = METHODS[self.method](**self.params)
        if getattr(method, "selects_sets", False):
            budgets = [max(2, data.n_train // 10)]
            return lambda: method.fit(data, learner, 0, budgets=budgets)
        return lambda: method.fit(data, learner, 0)


def hostcp_solver() -> Callable[[], Any]:
    """valbench.methods.hostcp.solver: solve + backward of 32 batched QPs and 32 LPs at B = B' = 40 (budget 8)."""
    import torch

    from valbench.methods.hostcp.solver import solve_lp, solve_qp

    f = torch.randn(32, 80, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    d = torch.cdist(f, f) / 1.4  # about D / gamma with gamma = 0.1 x the mean distance
    d_new, d_old = d[:, :40, :40].contiguous(), d[:, :40, 40:].contiguous()

    def solve_both():
        dn, do = d_new.clone().requires_grad_(True), d_old.clone().requires_grad_(True)
        for solve in (solve_qp, solve_lp):
            z_new, _ = solve(dn, do, 8.0)
            (z_new.sum(-2) ** 2).sum().backward()

    return solve_both


_HOSTCP_TINY = {"batch_size": 16, "epochs": 1, "dim": 8, "neighbours": 8, "max_valid": 64}

WORKLOADS: tuple[Workload, ...] = (
    Workload("logreg.fit", None, {"n_train": 2000, "dim": 32, "n_classes": 5}),
    Workload("mlp.fit", None, {"n_train": 500, "dim": 16, "n_classes": 3}, learner="mlp"),
    Workload("random", "random", {"n_train": 2_000_000, "n_valid": 10, "n_test": 10}),
    Workload("loo", "loo", {"n_train": 60, "n_valid": 60, "dim": 8}),
    Workload("knn-shapley", "knn-shapley", {"n_train": 3000, "n_valid": 300, "dim": 16}),
    Workload("tmc-shapley", "tmc-shapley", {"n_train": 60, "n_valid": 60, "dim": 6},
             {"max_permutations": 10, "min_permutations": 10, "batch": 10, "window": 1000}),
    Workload("beta-shapley", "beta-shapley", {"n_train": 60, "n_valid": 60, "dim": 6},
             {"max_permutations": 10, "min_permutations": 10, "batch": 10, "window": 1000}),
    Workload("banzhaf", "banzhaf", {"n_train": 60, "n_valid": 60, "dim": 6}, {"num_subsets": 64}),
    Workload("influence", "influence", {"n_train": 2000, "n_valid": 300, "dim": 32, "n_classes": 5}),
    Workload("hostcp", "hostcp", {"n_train": 64, "n_valid": 64, "dim": 8}, _HOSTCP_TINY),
    Workload("hostcp-lp", "hostcp-lp", {"n_train": 64, "n_valid": 64, "dim": 8}, _HOSTCP_TINY),
    Workload("hostcp-paper", "hostcp-paper", {"n_train": 80, "n_valid": 64, "dim": 8}, {"max_valid": 64}),
    Workload("hostcp-solver", None, {}, component=hostcp_solver),
    Workload("hostcp-fl", "hostcp-fl", {"n_train": 64, "n_valid": 64, "dim": 8}, _HOSTCP_TINY),
    Workload("hostcp-fl-lookahead", "hostcp-fl-lookahead", {"n_train": 64, "n_valid": 64, "dim": 8}, _HOSTCP_TINY),
    Workload("hostcp-fl-hypergradient", "hostcp-fl-hypergradient", {"n_train": 64, "n_valid": 64, "dim": 8},
             _HOSTCP_TINY),
    Workload("kcenter", "kcenter", {"n_train": 2000, "n_valid": 10, "dim": 16}),
    Workload("facility-location", "facility-location", {"n_train": 600, "n_valid": 10, "dim": 16}),
    Workload("craig", "craig", {"n_train": 600, "n_valid": 10, "dim": 16}),
    Workload("gradmatch", "gradmatch", {"n_train": 600, "n_valid": 10, "dim": 16}),
    Workload("glister", "glister", {"n_train": 600, "n_valid": 100, "dim": 16}),
    Workload("oracle-greedy", "oracle-greedy", {"n_train": 60, "n_valid": 60, "dim": 4}, {"pool": 8}),
    Workload("cnn.fit", None, {"n_train": 256, "dim": 64, "n_classes": 3}, learner="cnn",
             learner_params={"image_shape": (1, 8, 8), "epochs": 2, "min_steps": 0}),
    Workload("herding", "herding", {"n_train": 2000, "n_valid": 10, "dim": 16}),
    Workload("enn", "enn", {"n_train": 3000, "n_valid": 10, "dim": 16}),
    Workload("cleanlab", "cleanlab", {"n_train": 600, "n_valid": 10, "dim": 16, "n_classes": 5}),
    Workload("pipeline", "pipeline", {"n_train": 600, "n_valid": 10, "dim": 16},
             {"detector": "enn", "selector": "facility-location"}),
    Workload("el2n", "el2n", {"n_train": 600, "n_valid": 10, "dim": 16}, {"runs": 2}),
    Workload("grand", "grand", {"n_train": 600, "n_valid": 10, "dim": 16}, {"runs": 2}),
    Workload("forgetting", "forgetting", {"n_train": 600, "n_valid": 10, "dim": 16}, {"epochs": 5}),
    Workload("aum", "aum", {"n_train": 600, "n_valid": 10, "dim": 16}, {"epochs": 5}),
    Workload("margin", "margin", {"n_train": 600, "n_valid": 10, "dim": 16}, {"epochs": 5}),
    Workload("data-oob", "data-oob", {"n_train": 1000, "n_valid": 10, "dim": 16, "n_classes": 3}, {"num_models": 50}),
    Workload("tracin", "tracin", {"n_train": 600, "n_valid": 100, "dim": 16}, {"epochs": 5}, learner="mlp"),
    Workload("tracin-all", "tracin", {"n_train": 300, "n_valid": 50, "dim": 16},
             {"epochs": 3, "layers": "all", "projection_dim": 64}, learner="mlp"),
)
