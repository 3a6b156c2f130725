"""Label noise at known indices: the ground truth of mislabel detection.

The flipped positions come from their own stream per (seed, dataset) (:func:`valbench.streams.stream`), so they
are independent of the splits, of other datasets' flips and of a method's random draws (``random``'s picks).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from valbench.protocol import DataError, Dataset
from valbench.streams import stream


def flip_labels(y: np.ndarray, rate: float, n_classes: int,
                seed: int | np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(rate * n)`` labels, each to a uniformly drawn *different* class.

    Returns the noisy labels and the boolean mask of flipped positions; deterministic for ``seed`` (a seed or
    a generator, e.g. a :func:`~valbench.streams.stream`). Classes with few rows (Shuttle's 10 and 13) need
    nothing special: positions are drawn uniformly over the split and targets over the other classes.
    """
    if not 0 <= rate < 1:
        raise DataError(f"noise rate must lie in [0, 1), got {rate}")
    if n_classes < 2:
        raise DataError(f"label noise needs at least two classes, got n_classes={n_classes}")
    rng = np.random.default_rng(seed)
    n = len(y)
    flipped = rng.choice(n, size=int(round(rate * n)), replace=False)
    # a shift in 1..C-1 modulo C is uniform over the other classes and never the original one
    shift = rng.integers(1, n_classes, size=len(flipped))
    noisy = np.array(y, dtype=np.int64, copy=True)
    noisy[flipped] = (noisy[flipped] + shift) % n_classes
    mask = np.zeros(n, dtype=bool)
    mask[flipped] = True
    return noisy, mask


def inject_noise(data: Dataset, rate: float, seed: int) -> Dataset:
    """A copy of ``data`` whose train labels have ``rate`` of them flipped (valid and test stay clean), drawn
    from the stream ``(seed, data.name, "noise")``."""
    noisy, mask = flip_labels(data.y_train_clean, rate, data.n_classes, stream(seed, data.name, "noise"))
    return dataclasses.replace(data, y_train=noisy, noisy_mask=mask, meta={**data.meta, "noise_rate": rate})
