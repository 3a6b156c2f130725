"""HOST-CP: online subset selection through a learned, differentiable convex program.

S. Das, A. Singh, S. Chatterjee, S. Bhattacharya, S. Bhattacharya, "Finding High-Value Training Data
Subset through Differentiable Convex Programming", ECML PKDD 2021 (arXiv 2104.13794).

For each shuffled mini-batch of B points, with f = phi(x) a learnable feature map (Linear -> ReLU ->
BatchNorm) and E the B' already-selected points nearest to the batch:

    D_new[i, j] = ||f_i - f_j||,  D_old[i, e] = ||f_i - f_e||
    (Z_new, Z_old) = argmin of the relaxed facility-location program (methods/hostcp/layer.py)
    r_j = sum_i Z_new[i, j]                    (representativeness of incoming j)
    s_j = r_j 1[r_j > tau] / max_j' r_j' 1[r_j' > tau]   (selection weight; differentiable where r_j > tau)
    theta_hat = theta - eta * grad_theta sum_j s_j CE(x_j, y_j; theta) / B        (one-step look-ahead)
    phi   <- phi - eta_phi * grad_phi [CE_valid(theta_hat(phi)) + wd/2 ||phi||^2]  (selector step)
    theta <- theta - eta * grad_theta [sum_j s_j CE_j / B + wd/2 ||theta||^2]     (model step)
    points with s_j > 0 join the selected set.

The selected set is rebuilt in every epoch; the subset is the last epoch's selection, and a point's score
is its selection weight accumulated over epochs (plus a 1e-3 x last-epoch representativeness tie-breaker).
Subsets of exactly k points for every budget are the last selection trimmed, or topped up, by score.

Choices of ours (the paper leaves them open or the authors' code differs):
* E has B' columns always: missing neighbours are dummy columns at the batch's largest distance
  (``pad="far"``), or at the origin of the feature space as in the authors' code (``pad="origin"``).
  With ``pad="far"`` the very first batch is selected whole (nothing can cover it), and an epoch's first
  batch is covered by the previous epoch's selection.
* phi is updated with Adam (scale-free: the look-ahead gradient carries a factor eta), theta with SGD.
  A step whose gradient is exactly zero is skipped: under Adam, weight decay alone would move every
  weight by lr towards 0 per step and collapse phi within an epoch, where the authors' SGD barely shrinks
  it. The QP's gradient is exactly zero on batches where every support is one column (about half of them
  at gamma = 0.1 on synthetic data) or nothing passes tau. The LP's is zero almost everywhere, so
  ``hostcp-lp`` (fast solver) keeps phi at its initialisation; with ``solver="cvxpylayers"`` Adam instead follows the reference's tiny interior-point
  gradient (norm ~1e-5) at full step size, a solver artefact.
* The QP's gamma is relative to the batch's mean off-diagonal distance, so it is scale-free too.
* The program is solved by our exact solver (methods/hostcp/solver.py, ``solver="fast"``), not by
  cvxpylayers (``solver="cvxpylayers"``, the generic reference, 130-150x slower at B = 40): the same
  solution to interior-point precision, an exact active-set gradient for the QP, an exactly zero one for
  the LP. Measured on seeds 0-4 (benchmarks/hostcp_solver_quality.py): the QP's subset accuracy is the
  same within noise on synthetic, digits and mnist, its mislabel AUC (at chance with both) 0.03-0.05 lower
  on synthetic and mnist (about 2 standard errors); the LP's subsets differ by +0.03 (digits) and -0.04
  (mnist), since phi stays at its initialisation instead of following the reference's artefact.
* Defaults are ours (B = 32, B' = 16, d = 32, 3 epochs, fraction 0.15), not the authors' (40, 40, 100, 5,
  0.2): on seeds 0-4 (benchmarks/hostcp_solver_quality.py, 500 train points) the authors' were worse on
  digits and mnist (subset accuracy -0.06 and -0.04, about 2 standard errors; mislabel AUC -0.03 on all
  three datasets). With the fast solver both fit in ``make bench``.
* ``outer="hypergradient"`` (ours; the paper's ``"lookahead"`` stays the default) replaces the look-ahead
  by the exact gradient of the validation loss of the learner retrained to optimum on the pass's weighted
  selection (implicit differentiation; methods/hostcp/hypergradient.py). It needs the convex logreg learner.
* The online selection is sequential (a batch's old points are the earlier batches' selections, and phi
  changes after every batch), so mini-batches are solved one at a time; the solver's batching serves
  tests, benchmarks and variants that solve independent programs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from valbench.learners import Learner, LogisticRegression
from valbench.protocol import DataError, Dataset, MethodError, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.methods.hostcp.hypergradient import OUTERS, OuterHypergradient
from valbench.methods.hostcp.layer import MODES, SOLVERS, solve_facility


def feature_map(n_features: int, dim: int) -> nn.Module:
    """phi: Linear -> ReLU -> BatchNorm (the authors' selector network, sized for tabular features)."""
    return nn.Sequential(nn.Linear(n_features, dim), nn.ReLU(), nn.BatchNorm1d(dim))


def selection_weights(z_new: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, r)``: representativeness r_j = sum_i Z_new[i, j] and s = r 1[r > tau] rescaled to max 1.

    The threshold is applied as a mask, so s stays differentiable in r wherever r > tau.
    """
    r = z_new.sum(dim=-2)
    kept = r * (r > tau).to(r.dtype)
    top = kept.max()
    s = kept / top if top > 0 else kept
    return s, r


def nearest_selected(f_batch: torch.Tensor, f_selected: torch.Tensor, k: int) -> torch.Tensor:
    """Positions (into ``f_selected``) of the up to ``k`` selected points nearest to the batch (exact search)."""
    if len(f_selected) <= k:
        return torch.arange(len(f_selected))
    gap = torch.cdist(f_selected, f_batch).min(dim=1).values
    return torch.topk(gap, k, largest=False).indices


def budget_subsets(selected: np.ndarray, scores: np.ndarray, budgets: Sequence[int]) -> dict[int, np.ndarray]:
    """Exactly k distinct indices per budget: the selected points (best-scored first), then the rest by score."""
    order = np.lexsort((np.arange(len(scores)), -scores))  # best first, ties by index (deterministic)
    in_selection = np.zeros(len(scores), dtype=bool)
    in_selection[selected] = True
    ranked = np.concatenate([order[in_selection[order]], order[~in_selection[order]]])
    return {int(k): np.sort(ranked[:k]) for k in budgets}


def select_batch(phi: nn.Module, xb: torch.Tensor, x_old: torch.Tensor, n_old: int, fraction: float, mode: str,
                 gamma: float, tau: float, pad: str = "far", solver: str = "fast") -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, r)`` of one mini-batch: features, distances, the convex layer, then the selection weights.

    ``x_old`` holds up to ``n_old`` already-selected neighbours; the missing columns are padded with
    far-away dummies (the largest distance in the batch), which keeps one layer shape and lets a point
    that is not worth a new representative be covered by "nothing selected yet".
    """
    f = phi(torch.cat([xb, x_old]))  # the batch and its neighbours share BatchNorm statistics
    dist = torch.cdist(f, f)
    b = len(xb)
    d_new, d_old = dist[:b, :b], dist[:b, b:]
    if pad == "origin":  # the authors' choice: dummies at the origin of the feature space
        filler = f[:b].norm(dim=1, keepdim=True).expand(b, n_old - d_old.shape[1])
    else:
        filler = dist.detach().max().clamp_min(1e-6).expand(b, n_old - d_old.shape[1])
    d_old = torch.cat([d_old, filler], dim=1)
    # QP smoothing gamma is relative to the mean off-diagonal distance; the layer takes D / gamma
    scale = gamma * d_new.detach().sum().clamp_min(1e-6) / max(b * (b - 1), 1) if mode == "qp" else 1.0
    z_new, _ = solve_facility(d_new / scale, d_old / scale, fraction, mode, solver)
    return selection_weights(z_new, tau)


def weighted_loss(model: nn.Module, params: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor,
                  s: torch.Tensor) -> torch.Tensor:
    """sum_j s_j CE(x_j, y_j; params) / B."""
    ce = F.cross_entropy(functional_call(model, params, (xb,)), yb, reduction="none")
    return (s * ce).sum() / len(yb)


def lookahead_valid_loss(model: nn.Module, theta: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor,
                         s: torch.Tensor, eta: float, xv: torch.Tensor, yv: torch.Tensor) -> torch.Tensor:
    """CE_valid(theta_hat) with theta_hat = theta - eta grad_theta weighted_loss: differentiable in ``s``."""
    params = {k: v.detach().requires_grad_(True) for k, v in theta.items()}
    grads = torch.autograd.grad(weighted_loss(model, params, xb, yb, s), list(params.values()),
                                create_graph=True)
    theta_hat = {k: v - eta * g for (k, v), g in zip(params.items(), grads)}
    return F.cross_entropy(functional_call(model, theta_hat, (xv,)), yv)


def per_sample_gradients(model: nn.Module, theta: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor
                         ) -> torch.Tensor:
    """``(B, P)``: row j is grad_theta CE(x_j, y_j; theta), the parameters flattened in ``theta``'s order.

    For a linear softmax model (``nn.Linear``, the default learner) in closed form, (p_j - e_{y_j}) [x_j, 1];
    otherwise by ``torch.func.vmap`` of ``torch.func.grad``.
    """
    if isinstance(model, nn.Linear) and list(theta) == ["weight", "bias"]:
        residual = torch.softmax(xb @ theta["weight"].T + theta["bias"], dim=1)
        residual[torch.arange(len(yb)), yb] -= 1
        return torch.cat([(residual[:, :, None] * xb[:, None, :]).flatten(1), residual], dim=1)

    def loss(params, x, y):
        return F.cross_entropy(functional_call(model, params, (x[None],)), y[None])

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(theta, xb, yb)
    return torch.cat([g.flatten(1) for g in grads.values()], dim=1)


def unflatten(theta: dict[str, torch.Tensor], flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """``flat`` (parameters in ``theta``'s order) as a dict shaped like ``theta``."""
    sizes = [v.numel() for v in theta.values()]
    return {k: part.view_as(v) for (k, v), part in zip(theta.items(), flat.split(sizes))}


def valid_gradient(model: nn.Module, theta: dict[str, torch.Tensor], xv: torch.Tensor, yv: torch.Tensor
                   ) -> torch.Tensor:
    """grad_theta CE_valid(theta), flattened (closed form for the linear softmax model, else autograd)."""
    if isinstance(model, nn.Linear) and list(theta) == ["weight", "bias"]:
        residual = torch.softmax(xv @ theta["weight"].T + theta["bias"], dim=1)
        residual[torch.arange(len(yv)), yv] -= 1
        residual /= len(yv)
        return torch.cat([(residual.T @ xv).flatten(), residual.sum(0)])
    with torch.enable_grad():
        params = {k: v.detach().requires_grad_(True) for k, v in theta.items()}
        loss = F.cross_entropy(functional_call(model, params, (xv,)), yv)
        grads = torch.autograd.grad(loss, list(params.values()))
    return torch.cat([g.flatten() for g in grads])


def lookahead_gradient(model: nn.Module, theta: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor,
                       s: torch.Tensor, eta: float, xv: torch.Tensor, yv: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dCE_valid(theta_hat)/ds, step)`` without a second-order graph.

    theta_hat = theta - eta step with step = sum_j s_j grad CE_j(theta) / B is linear in s (the per-sample
    gradients G at theta do not depend on s), so dCE_valid(theta_hat)/ds_j = -eta / B <G_j, grad CE_valid(theta_hat)>:
    one per-sample gradient and one validation gradient per mini-batch instead of a double backward through
    ``lookahead_valid_loss`` (tested equal to it). ``step`` is also the model step's gradient (same s).
    """
    with torch.no_grad():
        g = per_sample_gradients(model, theta, xb, yb)
        step = s.detach() @ g / len(yb)
        flat = torch.cat([v.flatten() for v in theta.values()])
        grad_valid = valid_gradient(model, unflatten(theta, flat - eta * step), xv, yv)
        return -eta / len(yb) * (g @ grad_valid), step


@dataclass
class Run:
    """The state of one HOST-CP fit, shared by the selector and model steps."""

    x: torch.Tensor
    y: torch.Tensor
    xv: torch.Tensor
    yv: torch.Tensor
    model: nn.Module
    theta: dict[str, torch.Tensor]
    phi: nn.Module
    opt_phi: torch.optim.Optimizer
    eta: float
    weight_decay: float
    step_cache: tuple[torch.Tensor, torch.Tensor] | None = None  # (batch, step) of the last selector step
    hyper: OuterHypergradient | None = None  # outer="hypergradient": the retrained learner's state

    def valid_loss(self) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(functional_call(self.model, self.theta, (self.xv,)), self.yv))


@register_method
class HostCP(ValuationMethod):
    """HOST-CP (Das et al. 2021): online subset selection by a learned, differentiable convex program."""

    name = "hostcp"
    selects_sets = True
    family = "set-selection"
    params = {"batch_size": 32, "epochs": 3, "fraction": 0.15, "tau": 0.9, "gamma": 0.1, "dim": 32,
              "lr": 0.1, "lr_selector": 1e-2, "weight_decay": 5e-4, "neighbours": 16, "mode": "qp",
              "max_valid": 1000, "pad": "far", "solver": "fast", "outer": "lookahead"}

    def check(self) -> dict[str, Any]:
        c = self.config
        if c["mode"] not in MODES:
            raise DataError(f"method {self.name!r}: mode must be one of {MODES}, got {c['mode']!r}")
        if c["solver"] not in SOLVERS:
            raise DataError(f"method {self.name!r}: solver must be one of {SOLVERS}, got {c['solver']!r}")
        self._check_outer(c)
        if c["pad"] not in ("far", "origin"):
            raise DataError(f"method {self.name!r}: pad must be 'far' or 'origin', got {c['pad']!r}")
        if not 0 < c["fraction"] < 1:
            raise DataError(f"method {self.name!r}: fraction must lie in (0, 1), got {c['fraction']}")
        for key in ("batch_size", "epochs", "dim", "neighbours"):
            if int(c[key]) < 1:
                raise DataError(f"method {self.name!r}: {key} must be >= 1, got {c[key]}")
        if c["batch_size"] < 2:
            raise DataError(f"method {self.name!r}: batch_size must be >= 2 (BatchNorm), got {c['batch_size']}")
        return c

    def _check_outer(self, c: dict[str, Any]) -> None:
        if c["outer"] not in OUTERS:
            raise DataError(f"method {self.name!r}: outer must be one of {OUTERS}, got {c['outer']!r}")

    def _start(self, data: Dataset, learner: Learner, rng: np.random.Generator, c: dict[str, Any]) -> "Run":
        """The state of one fit: tensors, the validation subsample, the model theta, phi and its optimiser."""
        if c["outer"] == "hypergradient" and not isinstance(learner, LogisticRegression):
            raise MethodError(f"method {self.name!r}: outer='hypergradient' needs the logreg learner (its exact "
                              f"hypergradient assumes a convex learner), got {learner.name!r}")
        keep_valid = rng.permutation(len(data.y_valid))[: int(c["max_valid"])]
        model = learner.build()
        phi = self._feature_map(data.n_features, c)
        run = Run(x=torch.as_tensor(data.x_train), y=torch.as_tensor(data.y_train),
                   xv=torch.as_tensor(data.x_valid[keep_valid]), yv=torch.as_tensor(data.y_valid[keep_valid]),
                   model=model, theta={k: v.detach().clone() for k, v in model.named_parameters()}, phi=phi,
                   opt_phi=torch.optim.Adam(phi.parameters(), lr=c["lr_selector"], weight_decay=c["weight_decay"]),
                   eta=c["lr"], weight_decay=c["weight_decay"])
        if c["outer"] == "hypergradient":
            run.hyper = OuterHypergradient(run.x, run.y, run.xv, run.yv, data.n_classes, learner.l2)
        return run

    def _feature_map(self, n_features: int, c: dict[str, Any]) -> nn.Module:
        return feature_map(n_features, int(c["dim"]))

    @staticmethod
    def _selector_step(run: "Run", xb: torch.Tensor, yb: torch.Tensor, s: torch.Tensor) -> tuple[float, float]:
        """One phi step on the look-ahead validation loss (skipped where s carries no gradient).

        The look-ahead's gradient in s comes from ``lookahead_gradient`` (no second-order graph); the model
        step that follows on the same batch reuses its ``step``. Returns the clock after the look-ahead's
        gradient and after the step, for the timing breakdown.
        """
        grad_s, step = lookahead_gradient(run.model, run.theta, xb, yb, s, run.eta, run.xv, run.yv)
        run.step_cache = (xb, step)
        run.opt_phi.zero_grad()
        t2b = t3 = time.process_time()
        if s.requires_grad:  # s through the layer to phi
            s.backward(grad_s.to(s.dtype))
            if any(bool(p.grad.any()) for p in run.phi.parameters() if p.grad is not None):
                run.opt_phi.step()  # a zero gradient (the LP's) moves nothing: see "Choices of ours"
            t3 = time.process_time()
        return t2b, t3

    def _outer_step(self, run: "Run", idx: np.ndarray, xb: torch.Tensor, yb: torch.Tensor,
                    s: torch.Tensor) -> tuple[float, float]:
        """One phi step on the configured outer loss: the paper's look-ahead, or the exact hypergradient of the
        learner retrained on the pass's selection (methods/hostcp/hypergradient.py). Returns the clock as
        :meth:`_selector_step` does."""
        if run.hyper is None:
            return self._selector_step(run, xb, yb, s)  # the same xb: the model step reuses its step
        run.opt_phi.zero_grad()
        t2b = time.process_time()
        if s.requires_grad:
            run.hyper.backward(idx, s)
            if any(bool(p.grad.any()) for p in run.phi.parameters() if p.grad is not None):
                run.opt_phi.step()
        else:
            run.hyper.add(idx, s)
        return t2b, time.process_time()

    @staticmethod
    def _outer_extra(run: "Run") -> dict[str, float]:
        """The retrained learner's last validation loss, under outer="hypergradient"."""
        return {} if run.hyper is None else {"hyper_valid_loss": run.hyper.last_loss}

    @staticmethod
    def _model_step(run: "Run", xb: torch.Tensor, yb: torch.Tensor, s: torch.Tensor) -> None:
        """theta <- theta - eta (grad sum_j s_j CE_j / B + wd theta) on the selected, weighted points."""
        cached = run.step_cache
        run.step_cache = None
        with torch.no_grad():
            if cached is not None and cached[0] is xb:  # the selector step's, on the same batch and s
                step = cached[1]
            else:
                step = s.detach() @ per_sample_gradients(run.model, run.theta, xb, yb) / len(yb)
            flat = torch.cat([v.flatten() for v in run.theta.values()])
            run.theta = unflatten(run.theta, flat - run.eta * (step + run.weight_decay * flat))

    def fit(self, data: Dataset, learner: Learner, seed: int, budgets: Sequence[int] = ()) -> Valuation:
        c = self.check()
        with torch.random.fork_rng(devices=[]):  # seed locally: the caller's global RNG is untouched
            torch.manual_seed(seed)
            return self._fit(data, learner, np.random.default_rng(seed), budgets, c)

    def _fit(self, data: Dataset, learner: Learner, rng: np.random.Generator, budgets: Sequence[int],
             c: dict[str, Any]) -> Valuation:
        n = data.n_train
        run = self._start(data, learner, rng, c)
        x, y, phi = run.x, run.y, run.phi
        tau, bsz, n_old, mode = c["tau"], int(c["batch_size"]), int(c["neighbours"]), c["mode"]

        scores = np.zeros(n)
        last_r = np.zeros(n)
        timing = {"search_s": 0.0, "solve_s": 0.0, "lookahead_s": 0.0, "layer_backward_s": 0.0, "model_s": 0.0}
        n_selected_per_epoch = []
        selected: list[np.ndarray] = []
        for epoch in range(int(c["epochs"])):
            order = rng.permutation(n)
            batches = [order[i:i + bsz] for i in range(0, n, bsz)]
            if len(batches) > 1 and len(batches[-1]) < 2:  # BatchNorm needs two points: fold a lone one in
                batches[-2] = np.concatenate(batches[-2:])
                batches.pop()
            previous = np.concatenate(selected) if selected else np.zeros(0, dtype=np.int64)
            selected = []
            if run.hyper is not None:
                run.hyper.new_pass()
            for idx in batches:
                t0 = time.process_time()
                xb, yb = x[idx], y[idx]
                sel_idx = np.concatenate(selected) if selected else np.zeros(0, dtype=np.int64)
                if len(sel_idx) == 0:  # an epoch's first batch: the previous epoch's selection covers it
                    sel_idx = previous
                if len(sel_idx) == 0 and c["pad"] != "origin":  # the very first batch: nothing covers it
                    scores[idx] += 1.0
                    last_r[idx] = 1.0
                    selected.append(idx)
                    if run.hyper is not None:
                        run.hyper.add(idx, torch.ones(len(idx)))
                    continue
                with torch.inference_mode():  # exact nearest-selected search under the current phi
                    phi.eval()
                    old = sel_idx[nearest_selected(phi(xb), phi(x[sel_idx]), n_old).numpy()] \
                        if len(sel_idx) else sel_idx
                phi.train()
                t1 = time.process_time()
                s, r = select_batch(phi, xb, x[old], n_old, c["fraction"], mode, c["gamma"], tau, c["pad"],
                                    c["solver"])
                t2 = time.process_time()
                t2b, t3 = self._outer_step(run, idx, xb, yb, s)
                self._model_step(run, xb, yb, s.detach())
                s_np, r_np = s.detach().numpy().astype(np.float64), r.detach().numpy().astype(np.float64)
                scores[idx] += s_np
                last_r[idx] = r_np
                selected.append(idx[s_np > 0])
                t4 = time.process_time()
                timing["search_s"] += t1 - t0
                timing["solve_s"] += t2 - t1  # includes the batch's features and distances (small)
                timing["lookahead_s"] += t2b - t2
                timing["layer_backward_s"] += t3 - t2b
                timing["model_s"] += t4 - t3
            n_selected_per_epoch.append(int(sum(len(s_) for s_ in selected)))

        final = np.concatenate(selected) if selected else np.zeros(0, dtype=np.int64)
        scores = scores + 1e-3 * last_r
        subsets = budget_subsets(final, scores, budgets)
        extra = {**{k: round(v, 4) for k, v in timing.items()}, "n_selected": len(final),
                 "n_selected_per_epoch": ",".join(map(str, n_selected_per_epoch)), "mode": mode,
                 "solver": c["solver"], "final_valid_loss": run.valid_loss(), **self._outer_extra(run)}
        return Valuation(scores=scores, subsets=subsets, utility_evals=0, extra=extra)


@register_method
class HostCPLP(HostCP):
    """HOST-CP with the paper's linear program (no smoothing; its derivative is zero almost everywhere)."""

    name = "hostcp-lp"
    params = {**HostCP.params, "mode": "lp"}


@register_method
class HostCPPaper(HostCP):
    """HOST-CP at the authors' settings: batch 40, 40 old points, d = 100, 5 epochs, budget fraction 0.2.

    ``hostcp``'s defaults (32 / 16 / 32 / 3 / 0.15) measured better on digits and mnist (seeds 0-4,
    benchmarks/results/hostcp_solver_quality.md); this name runs the paper's own settings beside them.
    """

    name = "hostcp-paper"
    params = {**HostCP.params, "batch_size": 40, "neighbours": 40, "dim": 100, "epochs": 5, "fraction": 0.2}
