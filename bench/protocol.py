"""The contract between datasets, methods and the harness.

``Dataset`` -> ``ValuationMethod.fit`` -> ``Valuation`` is the whole interface: a dataset is validated once
when it is built, a valuation once when a method returns it, and everything in between may trust both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from valbench.errors import DataError  # re-exported: the harness and plugins import it from here
from valbench.learners import Learner


class MethodError(RuntimeError):
    """A valuation method returned something the harness cannot use; the message names the method."""


@dataclass
class Dataset:
    """Train / valid / test splits of one classification task, with the train labels' noise recorded.

    Features are float32 ``(n, d)``, labels int64 in ``[0, n_classes)``. ``noisy_mask[i]`` is True where
    train label ``i`` was flipped by :mod:`valbench.datasets.noise`; ``y_train_clean`` keeps the original labels.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    noisy_mask: np.ndarray | None = None
    y_train_clean: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_features = None
        for split in ("train", "valid", "test"):
            x = np.ascontiguousarray(getattr(self, f"x_{split}"), dtype=np.float32)
            y = np.ascontiguousarray(getattr(self, f"y_{split}"), dtype=np.int64)
            self._check_split(split, x, y, n_features)
            n_features = x.shape[1]
            setattr(self, f"x_{split}", x)
            setattr(self, f"y_{split}", y)
        present = np.unique(self.y_train)
        if len(present) < 2:
            raise DataError(f"dataset {self.name!r}: the train split has one class only ({present.tolist()}); "
                            "valuation needs at least two")
        if self.noisy_mask is None:
            self.noisy_mask = np.zeros(self.n_train, dtype=bool)
        self.noisy_mask = np.asarray(self.noisy_mask, dtype=bool)
        if self.noisy_mask.shape != (self.n_train,):
            raise DataError(f"dataset {self.name!r}: noisy_mask has shape {self.noisy_mask.shape}, "
                            f"expected ({self.n_train},)")
        if self.y_train_clean is None:
            self.y_train_clean = self.y_train.copy()

    def _check_split(self, split: str, x: np.ndarray, y: np.ndarray, n_features: int | None) -> None:
        where = f"dataset {self.name!r}, {split} split"
        if x.ndim != 2:
            raise DataError(f"{where}: features must be 2-D (n, d), got shape {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{where}: {len(x)} feature rows but labels of shape {y.shape}")
        if len(x) == 0:
            raise DataError(f"{where}: the split is empty")
        if n_features is not None and x.shape[1] != n_features:
            raise DataError(f"{where}: {x.shape[1]} features, but the train split has {n_features}")
        if not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).any(axis=1).sum())
            raise DataError(f"{where}: {bad} rows contain NaN or inf features")
        if self.n_classes < 2:
            raise DataError(f"{where}: n_classes={self.n_classes}; valuation needs at least two classes")
        if y.min() < 0 or y.max() >= self.n_classes:
            raise DataError(f"{where}: labels must lie in [0, {self.n_classes}), got [{y.min()}, {y.max()}]")

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]


@dataclass
class Valuation:
    """What a method returns: a value per train point (higher = more valuable), and optionally its own subsets.

    ``subsets[k]`` holds exactly ``k`` distinct train indices for set selectors; ``weights[k]`` (optional,
    coresets such as CRAIG and GradMatch) a non-negative sample weight per point of ``subsets[k]``, in the same
    order, with which the harness retrains on that subset; ``stderr`` the standard error of each score where
    the method estimates it; ``utility_evals`` the number of models trained.
    """

    scores: np.ndarray
    subsets: dict[int, np.ndarray] | None = None
    weights: dict[int, np.ndarray] | None = None
    stderr: np.ndarray | None = None
    utility_evals: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, method: str, n_train: int, budgets: Sequence[int] = ()) -> "Valuation":
        """Check shapes and values once, at the boundary, naming the method in every message."""
        scores = np.asarray(self.scores, dtype=np.float64)
        if scores.shape != (n_train,):
            raise MethodError(f"method {method!r} returned {scores.shape} scores, expected ({n_train},)")
        if not np.isfinite(scores).all():
            raise MethodError(f"method {method!r} returned {int((~np.isfinite(scores)).sum())} NaN/inf scores")
        self.scores = scores
        if self.stderr is not None:
            self.stderr = np.asarray(self.stderr, dtype=np.float64)
            if self.stderr.shape != (n_train,):
                raise MethodError(f"method {method!r} returned stderr of shape {self.stderr.shape}")
        if self.subsets is not None:
            for k in budgets:
                if k not in self.subsets:
                    raise MethodError(f"method {method!r} selects sets but returned none of size {k}")
            for k, idx in self.subsets.items():
                idx = np.asarray(idx, dtype=np.int64)
                if idx.shape != (k,) or len(np.unique(idx)) != k or idx.min(initial=0) < 0 \
                        or idx.max(initial=0) >= n_train:
                    raise MethodError(f"method {method!r}: subset for budget {k} must be {k} distinct "
                                      f"indices in [0, {n_train}), got {len(np.unique(idx))} distinct of {idx.size}")
                self.subsets[k] = idx
        if self.weights is not None:
            for k, w in self.weights.items():
                w = np.asarray(w, dtype=np.float64)
                if self.subsets is None or k not in self.subsets:
                    raise MethodError(f"method {method!r} returned weights for budget {k} but no subset of that size")
                if w.shape != (k,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                    raise MethodError(f"method {method!r}: weights for budget {k} must be {k} finite, non-negative "
                                      f"numbers with a positive sum, got shape {w.shape}")
                self.weights[k] = w
        return self


FAMILIES = ("valuation", "set-selection", "reference", "peer", "pipeline")
"""How the report groups methods: per-point valuation (top-k by score), set selectors (their own subsets:
HOST-CP and coresets), references (random, oracle-greedy), peers from other libraries (odv-*, pydvl-*), and
pipelines (a detector removes suspects, then a selector picks: ``methods/pipeline.py``)."""


class ValuationMethod:
    """Base class of every valuation method; subclass it and decorate with ``@register_method``.

    Class attributes: ``name`` (the registry key), ``params`` (defaults of every hyper-parameter; the
    runner expands lists given on the command line into a grid), ``description`` (one line for
    ``python -m valbench list``), ``selects_sets`` (True for methods that pick subsets themselves; their
    ``fit`` then also receives ``budgets``, the subset sizes the harness will evaluate) and ``family``
    (one of :data:`FAMILIES`, how reports group and colour methods). Parameter values are checked on
    construction by the rules of :mod:`valbench.params` (inferred from ``params``; ``param_kinds`` and
    ``param_rules`` where the default's type is not enough).
    """

    name: ClassVar[str] = ""
    params: ClassVar[Mapping[str, Any]] = {}
    description: ClassVar[str] = ""
    selects_sets: ClassVar[bool] = False
    family: ClassVar[str] = "valuation"
    param_kinds: ClassVar[Mapping[str, tuple[type, ...]]] = {}  # types a parameter accepts beyond its default's
    param_rules: ClassVar[Mapping[str, Any]] = {}  # name -> valbench.params.Rule where the default is not enough
    learners: ClassVar[tuple[str, ...] | None] = None  # the learners ``fit`` supports (None: any); the grid checks it

    def __init__(self, **params: Any) -> None:
        from valbench.params import check_values, method_rules  # the rules: type, range, choices (params.py)

        params = check_values(f"method {self.name!r}", params, method_rules(type(self)), self.params)
        self.config: dict[str, Any] = {**self.params, **params}

    def check(self) -> dict[str, Any]:
        """The configuration, checked: raise :class:`DataError` naming any value ``fit`` would refuse.

        The grid calls this on every parameter combination before any cell runs, so that a bad value is a
        usage error up front instead of a failed cell; ``fit`` calls it too. Override it to add a method's
        own rules (and return the configuration with values converted as ``fit`` uses them).
        """
        return dict(self.config)

    def prepare(self) -> None:
        """Once-per-process set-up that ``fit`` would otherwise pay on its first call in a process (JIT
        compilation). The runner calls it in the cell's worker before the timed fit, so that neither the fit's
        CPU time nor its cap holds a one-off cost that depends on which cell a worker happened to run first.
        Default: nothing."""

    def fit(self, data: Dataset, learner: Learner, seed: int) -> Valuation:  # pragma: no cover - abstract
        """Value every train point of ``data`` with the models of ``learner``; deterministic for ``seed``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"
