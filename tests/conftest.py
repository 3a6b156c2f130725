"""Shared fixtures: small datasets built in memory, single-threaded torch for speed and determinism."""

import numpy as np
import pytest
import torch

from valbench.protocol import Dataset
from valbench.registry import load_installed

torch.set_num_threads(1)
load_installed()


def blobs(n_train: int = 60, n_valid: int = 30, n_test: int = 40, n_classes: int = 3, dim: int = 4,
          seed: int = 0, name: str = "blobs") -> Dataset:
    """Well-separated Gaussian blobs: a learnable problem small enough for brute-force references."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(n_classes, dim))

    def draw(n):
        y = rng.integers(0, n_classes, size=n)
        y[:n_classes] = np.arange(n_classes)
        return (centres[y] + rng.normal(size=(n, dim))).astype(np.float32), y

    (xt, yt), (xv, yv), (xs, ys) = draw(n_train), draw(n_valid), draw(n_test)
    return Dataset(name=name, x_train=xt, y_train=yt, x_valid=xv, y_valid=yv, x_test=xs, y_test=ys,
                   n_classes=n_classes)


@pytest.fixture
def small_data() -> Dataset:
    return blobs()
