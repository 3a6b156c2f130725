"""The models whose accuracy defines value: multinomial logistic regression (default), a small MLP and a
LeNet-style CNN for image datasets.

Logistic regression and the MLP are trained full-batch with L-BFGS on the weighted, L2-regularised
cross-entropy

    L(theta) = sum_i w_i CE(f_theta(x_i), y_i) / sum_i w_i + (l2 / 2) ||W||^2

so a fit is deterministic for a seed (the MLP's initialisation is the only randomness) and can be
warm-started from an earlier fit's ``state``: Shapley-style methods retrain thousands of nearby subsets.
The CNN minimises the same objective by minibatch Adam or SGD for a fixed number of epochs
(:mod:`valbench.training`, the helper the training-dynamics scores share).
"""

from __future__ import annotations

from typing import Any, Callable

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from valbench.training import TrainSettings, batched_logits, train_minibatch


def as_tensor(a: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A tensor view of ``a`` (no copy for contiguous numpy arrays of the right dtype)."""
    if isinstance(a, torch.Tensor):
        return a.to(dtype)
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


class FittedModel:
    """A trained classifier: ``predict_proba``, ``accuracy``, ``loss``, and ``state`` for warm starts."""

    def __init__(self, module: nn.Module, n_classes: int, batch_size: int | None = None) -> None:
        self.module = module
        self.n_classes = n_classes
        self.batch_size = batch_size  # rows per forward pass (None: all at once); bounds a CNN's memory

    @torch.no_grad()
    def logits(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        if self.batch_size is None:
            return self.module(as_tensor(x))
        return batched_logits(self.module, as_tensor(x), self.batch_size)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return torch.softmax(self.logits(x), dim=1).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(dim=1).numpy()

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.logits(x).argmax(dim=1) == as_tensor(y, torch.int64)).double().mean())

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy (nats) on ``(x, y)``, without the regulariser."""
        return float(F.cross_entropy(self.logits(x), as_tensor(y, torch.int64)))

    @property
    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}


class Learner:
    """Base learner: ``fit(x, y, weight=None, init=None) -> FittedModel``; one instance per dataset.

    Subclasses build the ``nn.Module``; training is shared. ``n_classes`` is fixed by the dataset so a
    subset that lacks a class still yields a model over every class.
    """

    name = ""
    predict_batch: int | None = None  # FittedModel's rows per forward pass

    def __init__(self, n_features: int, n_classes: int, l2: float = 1e-3, max_iter: int = 100,
                 tol: float = 1e-6, seed: int = 0) -> None:
        if n_classes < 2:
            raise ValueError(f"learner {self.name!r}: n_classes must be >= 2, got {n_classes}")
        if l2 < 0:
            raise ValueError(f"learner {self.name!r}: l2 must be >= 0, got {l2}")
        self.n_features, self.n_classes = n_features, n_classes
        self.l2, self.max_iter, self.tol, self.seed = l2, max_iter, tol, seed
        self.fits = 0  # models trained through this learner: the cost unit of utility-based methods

    def build(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The learner's hyper-parameters, recorded in every result row."""
        return {"learner": self.name, "l2": self.l2, "max_iter": self.max_iter}

    def fit(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
            weight: np.ndarray | torch.Tensor | None = None,
            init: dict[str, torch.Tensor] | None = None) -> FittedModel:
        """Train on ``(x, y)`` with optional per-sample weights, from ``init`` (a ``state``) or a seeded init."""
        xt, yt = as_tensor(x), as_tensor(y, torch.int64)
        if len(xt) != len(yt):
            raise ValueError(f"learner {self.name!r}: {len(xt)} rows but {len(yt)} labels")
        torch.manual_seed(self.seed)
        module = self.build()
        if init is not None:
            module.load_state_dict(init)
        self.fits += 1
        if len(yt) == 0:
            return FittedModel(module.eval(), self.n_classes, self.predict_batch)
        wt = None if weight is None else as_tensor(weight)
        self._train(module, xt, yt, wt)
        return FittedModel(module.eval(), self.n_classes, self.predict_batch)

    def init_module(self, seed: int) -> nn.Module:
        """A fresh module initialised from ``seed`` (what :meth:`fit` starts from when ``seed`` is its own)."""
        torch.manual_seed(seed)
        return self.build()

    def train_settings(self, epochs: int) -> TrainSettings:
        """How training-dynamics methods (EL2N, forgetting, AUM, ...) train this learner's module by minibatches.

        The full-batch learners have no minibatch settings of their own: Adam, learning rate 1e-2, batches of
        32 (features are standardised), and the learner's L2. The CNN uses its own.
        """
        return TrainSettings(epochs=epochs, batch_size=32, lr=1e-2, optimizer="adam", l2=self.l2)

    def _train(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> None:
        if w is not None:
            w = w / w.sum()
        opt = torch.optim.LBFGS(list(module.parameters()), lr=1, max_iter=self.max_iter, tolerance_grad=self.tol,
                                tolerance_change=1e-9, history_size=10, line_search_fn="strong_wolfe")
        opt.step(self._objective(module, x, y, w))

    def _objective(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   w: torch.Tensor | None) -> Callable[[], torch.Tensor]:
        """An L-BFGS closure: the regularised loss, with each parameter's ``.grad`` set (by autograd here)."""
        decayed = [p for n, p in module.named_parameters() if n.endswith("weight")]

        def closure() -> torch.Tensor:
            for p in module.parameters():
                p.grad = None
            ce = F.cross_entropy(module(x), y, reduction="none" if w is not None else "mean")
            loss = (ce * w).sum() if w is not None else ce
            loss = loss + 0.5 * self.l2 * sum((p * p).sum() for p in decayed)
            loss.backward()
            return loss

        return closure


class LogisticRegression(Learner):
    """Multinomial logistic regression, the suite's default learner (convex: the fit is the optimum)."""

    name = "logreg"

    def build(self) -> nn.Module:
        module = nn.Linear(self.n_features, self.n_classes)
        with torch.no_grad():  # start at zero: the convex problem's fit is then independent of the seed
            module.weight.zero_()
            module.bias.zero_()
        return module

    def _objective(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   w: torch.Tensor | None) -> Callable[[], torch.Tensor]:
        """The closed-form gradient of softmax regression, (p - onehot)^T [x, 1]: ~30 % faster than autograd."""
        weights = torch.full((len(y),), 1.0 / len(y)) if w is None else w
        residual_scale = weights[:, None]
        onehot = F.one_hot(y, self.n_classes).to(x.dtype)
        weight, bias = module.weight, module.bias

        @torch.no_grad()
        def closure() -> torch.Tensor:
            logits = torch.addmm(bias, x, weight.t())
            log_norm = torch.logsumexp(logits, dim=1)
            ce = log_norm - logits.gather(1, y[:, None])[:, 0]
            loss = (ce * weights).sum() + 0.5 * self.l2 * (weight * weight).sum()
            residual = (torch.exp(logits - log_norm[:, None]) - onehot) * residual_scale
            weight.grad = residual.t() @ x + self.l2 * weight
            bias.grad = residual.sum(0)
            return loss

        return closure


class MLP(Learner):
    """One hidden ReLU layer; non-convex, so the seed fixes the initialisation and hence the fit."""

    name = "mlp"

    def __init__(self, n_features: int, n_classes: int, hidden: int = 64, l2: float = 1e-3,
                 max_iter: int = 200, tol: float = 1e-6, seed: int = 0) -> None:
        super().__init__(n_features, n_classes, l2=l2, max_iter=max_iter, tol=tol, seed=seed)
        self.hidden = hidden

    def build(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.n_features, self.hidden), nn.ReLU(),
                             nn.Linear(self.hidden, self.n_classes))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "hidden": self.hidden}


class CNN(Learner):
    """A LeNet-style convolutional network (LeCun et al. 1998) for image datasets, trained by minibatches.

    Layers: the flat features reshaped to ``image_shape`` (C, H, W), conv 5x5 (6 channels, same padding),
    ReLU, 2x2 max-pool, conv 5x5 (16 channels), ReLU, 2x2 max-pool (ceil mode, so 7x7 -> 4x4 and 8x8
    images work), then fully connected 120 -> 84 -> classes with ReLUs; the last layer is an ``nn.Linear``
    (what CRAIG / GradMatch's last-layer gradients read). Trained by :func:`valbench.training.train_minibatch`
    (``epochs``, ``batch_size``, ``lr``, ``optimizer`` adam or sgd, ``momentum``, ``l2`` on the weights,
    ``device`` auto / cpu / cuda), with sample weights; deterministic for a seed on the CPU. Small training
    sets (the subsets the harness retrains on) get more epochs, up to ``min_steps`` optimizer steps: with
    10 epochs alone a 25-point subset gets 10 steps and stays at chance. The image shape comes from the
    dataset (``meta["image_shape"]``), not from the user.
    """

    name = "cnn"
    predict_batch = 2048

    def __init__(self, n_features: int, n_classes: int, image_shape: tuple[int, int, int] | None = None,
                 epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adam",
                 momentum: float = 0.9, l2: float = 1e-4, min_steps: int = 500, device: str = "auto",
                 seed: int = 0) -> None:
        super().__init__(n_features, n_classes, l2=l2, seed=seed)
        if image_shape is None:
            raise ValueError("learner 'cnn' needs an image dataset: this dataset carries no image shape "
                             "(meta['image_shape'])")
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3 or min(shape) < 1 or math.prod(shape) != n_features:
            raise ValueError(f"learner 'cnn': image shape {image_shape} (C, H, W) does not hold the dataset's "
                             f"{n_features} features")
        if min(shape[1:]) < 4:
            raise ValueError(f"learner 'cnn': images of {shape[1]}x{shape[2]} are too small for two 2x2 pools "
                             "(4x4 at least)")
        self.image_shape = shape
        self.settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                                      momentum=momentum, l2=l2, device=device, min_steps=min_steps)

    def build(self) -> nn.Module:
        c, h, w = self.image_shape
        flat = 16 * math.ceil(math.ceil(h / 2) / 2) * math.ceil(math.ceil(w / 2) / 2)
        return nn.Sequential(
            nn.Unflatten(1, self.image_shape),
            nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, self.n_classes))

    def _train(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> None:
        train_minibatch(module, x, y, w, self.settings, seed=self.seed)

    def train_settings(self, epochs: int) -> TrainSettings:
        """The CNN's own settings for exactly ``epochs`` epochs (no step floor: a trajectory's length is given)."""
        return TrainSettings(**{**self.settings.__dict__, "epochs": epochs, "min_steps": 0})

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"learner": self.name, "l2": self.l2, "image_shape": list(self.image_shape), "epochs": s.epochs,
                "batch_size": s.batch_size, "lr": s.lr, "optimizer": s.optimizer, "momentum": s.momentum,
                "min_steps": s.min_steps, "device": s.device}


LEARNERS: dict[str, type[Learner]] = {"logreg": LogisticRegression, "mlp": MLP, "cnn": CNN}
IMAGE_LEARNERS = ("cnn",)  # learners that need the dataset's meta["image_shape"]


def make_learner(name: str, n_features: int, n_classes: int, seed: int = 0,
                 image_shape: tuple[int, int, int] | None = None, **params: Any) -> Learner:
    """The learner called ``name`` for a dataset's shape; a clear error for an unknown name.

    ``image_shape`` (a dataset's ``meta["image_shape"]``) reaches the learners that need it (the CNN) and is
    ignored by the others.
    """
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; valid: {sorted(LEARNERS)}")
    if name in IMAGE_LEARNERS:
        params["image_shape"] = image_shape
    return LEARNERS[name](n_features, n_classes, seed=seed, **params)


def learner_for(name: str, data: Any, seed: int = 0, **params: Any) -> Learner:
    """The learner called ``name`` for a :class:`~valbench.protocol.Dataset` (its shape, classes, image shape)."""
    return make_learner(name, data.n_features, data.n_classes, seed=seed,
                        image_shape=data.meta.get("image_shape"), **params)
