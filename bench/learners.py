"""The models whose accuracy defines value: multinomial logistic regression (default), a small MLP and a
ConvNet for image datasets.

Logistic regression and the MLP are trained full-batch with L-BFGS on the weighted, L2-regularised
cross-entropy

    L(theta) = sum_i w_i CE(f_theta(x_i), y_i) / sum_i w_i + (l2 / 2) ||W||^2

so a fit is deterministic for a seed (the MLP's initialisation is the only randomness) and can be
warm-started from an earlier fit's ``state``: Shapley-style methods retrain thousands of nearby subsets.
The CNN minimises the same objective by minibatch Adam or SGD with a cosine schedule (:mod:`valbench.training`,
the helper the training-dynamics scores share).
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


class RandomShift(nn.Module):
    """Light augmentation for images (N, C, H, W): in training mode, each image is translated by a whole number of
    pixels drawn uniformly from [-max_shift, max_shift] in each direction (zero fill); in evaluation mode, the
    identity. Its own generator, seeded at construction, keeps a fit deterministic for the learner's seed."""

    def __init__(self, max_shift: int, seed: int = 0) -> None:
        super().__init__()
        self.max_shift = max_shift
        self.generator = torch.Generator().manual_seed(int(seed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.max_shift == 0:
            return x
        s, (n, _, h, w) = self.max_shift, x.shape
        padded = F.pad(x, (s, s, s, s))
        dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=self.generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, channel, rows, cols]


class CNN(Learner):
    """The ConvNet of the coreset and dataset-condensation literature (Gidaris & Komodakis 2018; Zhao et al. 2021,
    "Dataset Condensation with Gradient Matching"), narrowed to fit a CPU, for image datasets.

    Layers: the flat features reshaped to ``image_shape`` (C, H, W), then ``depth`` blocks (default: 3, fewer where
    the last feature map would be smaller than 2x2, so 2 on 8x8 digits) of conv 3x3 (``width``
    channels, same padding), instance normalisation (``nn.GroupNorm(width, width)``, affine, as the reference code
    writes it), ReLU and 2x2 average pooling (28 -> 14 -> 7 -> 3), then one ``nn.Linear`` from the flattened
    features to the classes: the last layer that CRAIG / GradMatch / GLISTER read, and whose input (``module[:-1]``)
    is the penultimate embedding. The reference ConvNet has width 128; 32 keeps a 20,000-image epoch near 12 CPU s.

    Training (:func:`valbench.training.train_minibatch`, with sample weights; deterministic for a seed on the CPU,
    CUDA when ``device`` is auto and one is present): ``epochs`` passes in batches of ``batch_size``, raised on a
    small training set until ``min_steps`` optimizer steps are taken (a 100-image subset gets 300 steps, not 20),
    with the learning rate decayed along a half cosine to 0 (``schedule``) so the loss settles whatever the run's
    length; ``l2`` decays the weights; ``augment`` > 0 translates training images by up to that many pixels
    (:class:`RandomShift`, off by default: on a Fashion-MNIST validation split it cost 3 points at 1,000 images
    and gained nothing beyond noise at 100; docs/learners.md gives the choice of these defaults). The image
    shape comes from the dataset (``meta["image_shape"]``), not from the user.
    """

    name = "cnn"
    predict_batch = 2048

    def __init__(self, n_features: int, n_classes: int, image_shape: tuple[int, int, int] | None = None,
                 width: int = 32, depth: int | None = None, epochs: int = 5, batch_size: int = 64, lr: float = 3e-3,
                 optimizer: str = "adam", momentum: float = 0.9, l2: float = 5e-4, min_steps: int = 300,
                 schedule: str = "cosine", augment: int = 0, device: str = "auto", seed: int = 0) -> None:
        super().__init__(n_features, n_classes, l2=l2, seed=seed)
        if image_shape is None:
            raise ValueError("learner 'cnn' needs an image dataset: this dataset carries no image shape "
                             "(meta['image_shape'])")
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3 or min(shape) < 1 or math.prod(shape) != n_features:
            raise ValueError(f"learner 'cnn': image shape {image_shape} (C, H, W) does not hold the dataset's "
                             f"{n_features} features")
        if depth is None:  # three blocks (28 -> 3x3), fewer where the last map would shrink below 2x2 (8 -> 2x2)
            depth = max([d for d in range(1, 4) if min(shape[1:]) // 2 ** d >= 2], default=0)
            if depth == 0:
                raise ValueError(f"learner 'cnn': images of {shape[1]}x{shape[2]} are too small for a 2x2 pool "
                                 "(4x4 at least)")
        for label, value, low in (("width", width, 1), ("depth", depth, 1), ("augment", augment, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"learner 'cnn': {label} must be a whole number >= {low}, got {value!r}")
        if min(shape[1:]) < 2 ** depth:
            raise ValueError(f"learner 'cnn': images of {shape[1]}x{shape[2]} are too small for {depth} 2x2 pools "
                             f"({2 ** depth}x{2 ** depth} at least)")
        self.image_shape, self.width, self.depth, self.augment = shape, width, depth, augment
        self.settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                                      momentum=momentum, l2=l2, device=device, min_steps=min_steps,
                                      schedule=schedule)

    def build(self) -> nn.Module:
        c, h, w = self.image_shape
        layers: list[nn.Module] = [nn.Unflatten(1, self.image_shape)]
        if self.augment:
            layers.append(RandomShift(self.augment, seed=self.seed))
        for _ in range(self.depth):
            layers += [nn.Conv2d(c, self.width, 3, padding=1), nn.GroupNorm(self.width, self.width), nn.ReLU(),
                       nn.AvgPool2d(2)]
            c, h, w = self.width, h // 2, w // 2
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, self.n_classes))

    def _train(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> None:
        train_minibatch(module, x, y, w, self.settings, seed=self.seed)

    def train_settings(self, epochs: int) -> TrainSettings:
        """The CNN's own settings for exactly ``epochs`` epochs (no step floor: a trajectory's length is given)."""
        return TrainSettings(**{**self.settings.__dict__, "epochs": epochs, "min_steps": 0})

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"learner": self.name, "l2": self.l2, "image_shape": list(self.image_shape), "width": self.width,
                "depth": self.depth, "augment": self.augment, "epochs": s.epochs, "batch_size": s.batch_size,
                "lr": s.lr, "optimizer": s.optimizer, "momentum": s.momentum, "min_steps": s.min_steps,
                "schedule": s.schedule, "device": s.device}


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


def out_of_fold_probabilities(learner: Learner, x: np.ndarray, y: np.ndarray, n_classes: int, folds: int,
                              seed: int) -> np.ndarray:
    """``(n, n_classes)`` predicted probabilities of each point by the learner fitted on the other folds.

    Stratified folds where every class has at least ``folds`` members, plain shuffled folds otherwise (a rare
    class then misses some training folds, as it would in any cross-validation of that data).
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    _, counts = np.unique(y, return_counts=True)
    splitter = (StratifiedKFold if counts.min() >= folds else KFold)(folds, shuffle=True, random_state=seed)
    probs = np.zeros((len(y), n_classes))
    for train, held in splitter.split(x, y):
        probs[held] = learner.fit(x[train], y[train]).predict_proba(x[held])
    return probs
