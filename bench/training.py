"""Minibatch training of a torch module, shared by the CNN learner and the training-dynamics scores.

One loop for every minibatch user (the CNN learner, EL2N / GraNd, forgetting events, AUM, margin), so
that "the learner's training" means the same thing everywhere:

    minimise  L(theta) = sum_i w_i CE(f_theta(x_i), y_i) / sum_i w_i + (l2 / 2) ||W||^2

by Adam or SGD with momentum over ``epochs`` passes of shuffled minibatches, or more passes where a small
training set would otherwise get fewer than ``min_steps`` optimizer steps (epochs x ceil(n / batch_size)):
a 25-point subset in batches of 64 would get one step per epoch. The learning rate is constant
(``schedule="constant"``) or decays along a half cosine from ``lr`` to 0 over the run's steps
(``schedule="cosine"``), so the loss settles at the end of a run whatever its length. A minibatch B contributes
``sum_{i in B} w_i CE_i / (|B| mean(w))``, an unbiased estimate of the weighted mean (the plain mean when
every weight is 1); points of weight 0 are left out of the shuffle, so a zero weight is exactly the same as
dropping the point. ``W`` are the parameters named ``*weight`` (biases are not decayed), as in the
full-batch learners of :mod:`valbench.learners`.

Determinism: the shuffle is drawn from a CPU ``torch.Generator`` seeded by ``seed`` (the module's
initialisation is the caller's, seeded before it builds the module), so on the CPU a fit is a function of
its inputs and seed. On CUDA (``device="auto"`` picks it when present) the same code runs; cuDNN kernels
may make it not bitwise reproducible there.

``on_epoch(epoch, logits)`` is called after each epoch (1-based) with the model's logits on every row of
``x`` (evaluation mode, no gradient, on the CPU): the trajectory that forgetting events, AUM and EL2N read,
without a second trainer. ``on_checkpoint(epoch, module, lr)`` is called at the same moments with the module itself
(on the training device; copy what you keep) and the optimiser's learning rate then: TracIn's checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
EpochCallback = Callable[[int, torch.Tensor], None]
CheckpointCallback = Callable[[int, nn.Module, float], None]


@dataclass(frozen=True)
class TrainSettings:
    """How a module is trained by :func:`train_minibatch` (the learner's hyper-parameters)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9  # SGD only
    l2: float = 0.0
    device: str = "auto"
    min_steps: int = 0
    schedule: str = "constant"

    def __post_init__(self) -> None:
        check_settings(self)

    def epochs_for(self, n: int) -> int:
        """Epochs run on ``n`` points: ``epochs``, raised until at least ``min_steps`` steps are taken."""
        steps_per_epoch = max(1, math.ceil(n / self.batch_size))
        return max(self.epochs, math.ceil(self.min_steps / steps_per_epoch))


def check_settings(s: TrainSettings) -> None:
    """Refuse settings no training could use, with a message naming the value."""
    for name, low in (("epochs", 1), ("batch_size", 1), ("min_steps", 0)):
        value = getattr(s, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    if not s.lr > 0:
        raise ValueError(f"lr must be > 0, got {s.lr!r}")
    if s.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {s.optimizer!r}")
    if s.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {s.schedule!r}")
    if not 0 <= s.momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {s.momentum!r}")
    if not s.l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {s.l2!r}")
    if s.device not in ("auto", "cpu") and not s.device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {s.device!r}")


def resolve_device(device: str) -> torch.device:
    """``auto``: the first CUDA device when one is present, else the CPU; nothing requires a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but torch sees no CUDA device")
    return torch.device(device)


@torch.no_grad()
def batched_logits(module: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """``module(x)`` in evaluation mode, ``batch_size`` rows at a time (bounded memory), on x's device."""
    was_training = module.training
    module.eval()
    out = torch.cat([module(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else \
        module(x)
    module.train(was_training)
    return out


def lr_schedule(opt: torch.optim.Optimizer, schedule: str, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate factor per step: 1 (constant) or a half cosine from 1 to 0 over ``total_steps``."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total_steps)
                                                                                    / total_steps)))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)


def train_minibatch(module: nn.Module, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None,
                    settings: TrainSettings, seed: int = 0, on_epoch: EpochCallback | None = None,
                    on_checkpoint: CheckpointCallback | None = None) -> nn.Module:
    """Train ``module`` in place on ``(x, y)`` (optional per-row ``weight``) and return it, on the CPU.

    See the module docstring for the objective, the weighting and determinism. The module is moved to the
    settings' device for training and back to the CPU at the end, so a fitted model is used like every other
    learner's (methods call ``model.module`` on CPU tensors).
    """
    if len(x) != len(y):
        raise ValueError(f"{len(x)} rows but {len(y)} labels")
    if weight is not None:
        if weight.shape != (len(y),):
            raise ValueError(f"weight must have shape ({len(y)},), got {tuple(weight.shape)}")
        if not torch.isfinite(weight).all() or (weight < 0).any() or not weight.sum() > 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
    device = resolve_device(settings.device)
    module.to(device).train()
    xd, yd = x.to(device), y.to(device)
    keep = torch.arange(len(y)) if weight is None else torch.nonzero(weight > 0)[:, 0]
    # Relative weights, mean 1 over the points trained on: a batch's loss is then the weighted mean's estimate.
    scale = None if weight is None else (weight[keep] / weight[keep].mean()).to(device)
    decayed = [p for n, p in module.named_parameters() if n.endswith("weight")]
    params = list(module.parameters())
    if settings.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=settings.lr)
    else:
        opt = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum)
    generator = torch.Generator().manual_seed(int(seed))
    epochs = settings.epochs_for(len(keep))
    total_steps = epochs * max(1, math.ceil(len(keep) / settings.batch_size))
    schedule = lr_schedule(opt, settings.schedule, total_steps)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(keep), generator=generator)
        for start in range(0, len(order), settings.batch_size):
            pos = order[start:start + settings.batch_size]
            rows = keep[pos].to(device)
            ce = F.cross_entropy(module(xd[rows]), yd[rows], reduction="none")
            loss = ce.mean() if scale is None else (ce * scale[pos.to(device)]).mean()
            if settings.l2 > 0:
                loss = loss + 0.5 * settings.l2 * sum((p * p).sum() for p in decayed)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
        if on_epoch is not None:
            on_epoch(epoch, batched_logits(module, xd).cpu())
        if on_checkpoint is not None:
            on_checkpoint(epoch, module, float(opt.param_groups[0]["lr"]))
    return module.cpu().eval()
