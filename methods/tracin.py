"""TracIn (Pruthi et al., NeurIPS 2020): gradient dot products summed over the checkpoints of one training run.

The learner's module is trained by the shared minibatch trainer (:func:`valbench.training.train_minibatch`,
the learner's own settings for the CNN; Adam, lr 1e-2, batches of 32 for logreg and the MLP, as the
training-dynamics scores train them) for ``epochs`` epochs, keeping a checkpoint theta_k and its learning rate
eta_k after every epoch. With g_k(z) = grad_theta CE(f_{theta_k}(x), y):

    validation value   value_i = sum_k eta_k g_k(z_i) . (1/|V|) sum_{v in V} g_k(z_v)   (TracInCP, train -> valid)
    self-influence     self_i  = sum_k eta_k ||g_k(z_i)||^2                             (score: -self_i)

A positive train-to-validation influence means a gradient step on z_i lowers the validation loss: the point
helps (higher = more valuable). High self-influence marks points the model must bend to fit, which is what
flipped labels are (Pruthi et al. section 4.1): ``target="self"`` scores -self_i so the harness's
"lowest value first" finds them.

``layers="last"`` (default) takes the gradient of the last ``nn.Linear`` only: with a_i the input of that layer
(the features for logistic regression, where it is the whole model) and r_i = softmax - onehot,
g(z_i) = r_i (x) [a_i, 1], so every dot product is a product of two small ones, (r_i . r_v)([a_i,1] . [a_v,1]),
and a checkpoint costs one forward pass. ``layers="all"`` takes every parameter: per-sample gradients by
``torch.func`` (``vmap`` of ``grad``) in chunks, exact, or through a seeded Gaussian random projection to
``projection_dim`` dimensions (``projection_dim`` > 0; E[P P^T] = I, as TracIn's and TRAK's authors project)
when the per-sample gradients should be stored small. Checked against the closed-form gradient of logistic
regression, a hand computation on a tiny network and dattri's ``TracInAttributor`` on the same checkpoints
(``tests/methods/test_tracin.py``, ``tests/methods/test_dattri.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from valbench.learners import Learner, as_tensor
from valbench.params import Rule
from valbench.protocol import DataError, Dataset, Valuation, ValuationMethod
from valbench.registry import register_method
from valbench.training import train_minibatch

TARGETS = ("validation", "self")
LAYERS = ("last", "all")


@dataclass(frozen=True)
class Checkpoint:
    """A module's parameters after one epoch, and the learning rate TracIn weights that epoch's gradients by."""

    state: dict[str, torch.Tensor]
    lr: float


def train_with_checkpoints(learner: Learner, x: np.ndarray, y: np.ndarray, epochs: int,
                           seed: int) -> tuple[nn.Module, list[Checkpoint]]:
    """Train the learner's module by minibatches for ``epochs`` epochs; a checkpoint after each."""
    checkpoints: list[Checkpoint] = []

    def keep(epoch: int, module: nn.Module, lr: float) -> None:
        checkpoints.append(Checkpoint({k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, lr))

    module = train_minibatch(learner.init_module(seed), as_tensor(x), as_tensor(y, torch.int64), None,
                             learner.train_settings(epochs), seed=seed, on_checkpoint=keep)
    return module, checkpoints


def split_last_layer(module: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """The module as (features, last linear layer): logistic regression is its own last layer."""
    if isinstance(module, nn.Linear):
        return nn.Identity(), module
    if isinstance(module, nn.Sequential) and isinstance(module[-1], nn.Linear):
        return module[:-1], module[-1]
    raise DataError(f"tracin's last-layer gradients need a module ending in nn.Linear, got {type(module).__name__}")


@torch.no_grad()
def last_layer_parts(module: nn.Module, x: np.ndarray, y: np.ndarray,
                     batch: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals r = softmax - onehot (n, C) and augmented last-layer inputs [a, 1] (n, h + 1), float64."""
    features, last = split_last_layer(module)
    module.eval()
    xt, yt = as_tensor(x), as_tensor(y, torch.int64)
    residuals, inputs = [], []
    for start in range(0, len(xt), batch):
        a = features(xt[start:start + batch])
        logits = last(a)
        residuals.append(torch.softmax(logits.double(), 1) - F.one_hot(yt[start:start + batch], logits.shape[1]))
        inputs.append(torch.cat([a.double(), torch.ones(len(a), 1, dtype=torch.float64)], 1))
    return torch.cat(residuals), torch.cat(inputs)


def last_layer_influence(module: nn.Module, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """One checkpoint's train-to-validation influence g_i . mean_v g_v and self-influence ||g_i||^2, last layer."""
    r, a = last_layer_parts(module, data.x_train, data.y_train)
    rv, av = last_layer_parts(module, data.x_valid, data.y_valid)
    mean_valid = rv.T @ av / len(rv)                                        # (C, h + 1): mean validation gradient
    to_valid = (r * (a @ mean_valid.T)).sum(1)
    self_influence = (r * r).sum(1) * (a * a).sum(1)
    return to_valid.numpy(), self_influence.numpy()


def per_sample_gradients(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n, P) gradients of each point's cross-entropy with respect to every parameter (``torch.func``)."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.detach() for k, v in module.named_buffers()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = torch.func.functional_call(module, (p, buffers), (xi[None],))
        return F.cross_entropy(logits, yi[None])

    grads = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([g.reshape(len(x), -1) for g in grads.values()], 1)


def all_parameter_influence(module: nn.Module, data: Dataset, projection: torch.Tensor | None,
                            chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One checkpoint's influences over every parameter, exact or through ``projection`` (P, k)."""
    module.eval()
    xv, yv = as_tensor(data.x_valid), as_tensor(data.y_valid, torch.int64)
    mean_valid = None
    for start in range(0, len(xv), chunk):
        g = per_sample_gradients(module, xv[start:start + chunk], yv[start:start + chunk]).double()
        g = g if projection is None else g @ projection
        part = g.sum(0)
        mean_valid = part if mean_valid is None else mean_valid + part
    mean_valid /= len(xv)
    x, y = as_tensor(data.x_train), as_tensor(data.y_train, torch.int64)
    to_valid, self_influence = [], []
    for start in range(0, len(x), chunk):
        g = per_sample_gradients(module, x[start:start + chunk], y[start:start + chunk]).double()
        g = g if projection is None else g @ projection
        to_valid.append(g @ mean_valid)
        self_influence.append((g * g).sum(1))
    return torch.cat(to_valid).numpy(), torch.cat(self_influence).numpy()


def gaussian_projection(n_params: int, dim: int, seed: int) -> torch.Tensor:
    """A seeded (n_params, dim) Gaussian matrix scaled by 1/sqrt(dim), so that E[P P^T] = I."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(n_params, dim, generator=generator, dtype=torch.float64) / dim ** 0.5


def tracin_influence(module: nn.Module, checkpoints: list[Checkpoint], data: Dataset, layers: str = "last",
                     projection_dim: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train-to-validation influence and self-influence of every train point, summed over the checkpoints with
    their learning rates (TracInCP). ``module`` gives the architecture; each checkpoint's state is loaded into a
    copy of it."""
    work = copy.deepcopy(module)
    n_params = sum(p.numel() for p in work.parameters())
    projection = gaussian_projection(n_params, projection_dim, seed) if layers == "all" and projection_dim else None
    to_valid, self_influence = np.zeros(data.n_train), np.zeros(data.n_train)
    for checkpoint in checkpoints:
        work.load_state_dict(checkpoint.state)
        if layers == "last":
            v, s = last_layer_influence(work, data)
        else:
            v, s = all_parameter_influence(work, data, projection)
        to_valid += checkpoint.lr * v
        self_influence += checkpoint.lr * s
    return to_valid, self_influence


@register_method
class TracIn(ValuationMethod):
    """TracIn (Pruthi et al. 2020): learning-rate-weighted gradient dot products over the epochs' checkpoints."""

    name = "tracin"
    description = ("TracIn (Pruthi et al. 2020): checkpoint gradient dot products; train->validation value or "
                   "self-influence (mislabels), last layer or all parameters")
    params = {"target": "validation", "layers": "last", "projection_dim": 0, "epochs": 10}
    learners = ("logreg", "mlp", "cnn")
    param_rules = {"target": Rule(str, choices=TARGETS), "layers": Rule(str, choices=LAYERS),
                   "projection_dim": Rule(int, low=0), "epochs": Rule(int, low=1)}

    def check(self) -> dict:
        c = super().check()
        if c["target"] not in TARGETS:
            raise DataError(f"method 'tracin': target must be one of {list(TARGETS)}, got {c['target']!r}")
        if c["layers"] not in LAYERS:
            raise DataError(f"method 'tracin': layers must be one of {list(LAYERS)}, got {c['layers']!r}")
        for key, low in (("projection_dim", 0), ("epochs", 1)):
            value = c[key]
            if isinstance(value, bool) or not float(value).is_integer() or value < low:
                raise DataError(f"method 'tracin': {key} must be a whole number >= {low}, got {value!r}")
            c[key] = int(value)
        if c["projection_dim"] and c["layers"] != "all":
            raise DataError("method 'tracin': projection_dim applies to layers='all' (the last layer's gradients "
                            "are already small), got layers='last'")
        return c

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:
        c = self.check()
        module, checkpoints = train_with_checkpoints(learner, data.x_train, data.y_train, c["epochs"], seed)
        to_valid, self_influence = tracin_influence(module, checkpoints, data, c["layers"], c["projection_dim"],
                                                    seed)
        scores = to_valid if c["target"] == "validation" else -self_influence
        return Valuation(scores=scores, utility_evals=1,
                         extra={"checkpoints": len(checkpoints), "layers": c["layers"]})
