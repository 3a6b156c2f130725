"""Tabular sets that need no network: scikit-learn's bundled ones and a two-class Gaussian mixture."""

from __future__ import annotations

import numpy as np
from sklearn import datasets as skdata

from valbench.protocol import Dataset
from valbench.registry import register_dataset
from valbench.datasets.splits import make_splits


def _bundled(name: str, bunch_loader, seed: int, n_train: int | None, n_valid: int | None,
             n_test: int | None, meta: dict | None = None) -> Dataset:
    x, y = bunch_loader(return_X_y=True)
    return make_splits(name, x, y, seed, n_train=n_train, n_valid=n_valid, n_test=n_test, meta=meta)


@register_dataset("digits", "scikit-learn's 8x8 handwritten digits: 1,797 points, 64 features, 10 classes",
                  image_shape=(1, 8, 8))
def load_digits(seed: int = 0, n_train: int | None = None, n_valid: int | None = None,
                n_test: int | None = None) -> Dataset:
    return _bundled("digits", skdata.load_digits, seed, n_train, n_valid, n_test, meta={"image_shape": (1, 8, 8)})


@register_dataset("breast_cancer", "Wisconsin breast cancer: 569 points, 30 features, 2 classes")
def load_breast_cancer(seed: int = 0, n_train: int | None = None, n_valid: int | None = None,
                       n_test: int | None = None) -> Dataset:
    return _bundled("breast_cancer", skdata.load_breast_cancer, seed, n_train, n_valid, n_test)


@register_dataset("wine", "UCI wine cultivars: 178 points, 13 features, 3 classes")
def load_wine(seed: int = 0, n_train: int | None = None, n_valid: int | None = None,
              n_test: int | None = None) -> Dataset:
    return _bundled("wine", skdata.load_wine, seed, n_train, n_valid, n_test)


@register_dataset("gaussian", "two-class Gaussian mixture (n, dim and class separation configurable)")
def load_gaussian(seed: int = 0, n: int = 1000, dim: int = 10, separation: float = 1.5,
                  n_train: int | None = None, n_valid: int | None = None, n_test: int | None = None) -> Dataset:
    """Two isotropic Gaussians whose means are ``separation`` apart along a random direction."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    direction *= separation / 2 / np.linalg.norm(direction)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, dim)) + np.where(y[:, None] == 1, direction, -direction)
    return make_splits("gaussian", x, y, seed, n_train=n_train, n_valid=n_valid, n_test=n_test,
                       meta={"pool_per_seed": True})  # a new pool per seed: row ids do not match across seeds
