"""Deterministic stratified train/valid/test splits with standardisation fitted on the train split only."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from bench.protocol import DataError, Dataset

DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


def standardise(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centre and scale every array by the train split's mean and std (constant features left at scale 1)."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std < 1e-8] = 1.0
    return [((a - mean) / std).astype(np.float32) for a in (x_train, *others)]


def split_sizes(name: str, n: int, n_train: int | None, n_valid: int | None,
                n_test: int | None) -> tuple[int, int, int]:
    """Split sizes: the given ones, with any missing ones taking the default fractions of what remains."""
    sizes = [n_train, n_valid, n_test]
    for size, label in zip(sizes, ("n_train", "n_valid", "n_test")):
        if size is not None and size < 1:
            raise DataError(f"dataset {name!r}: {label}={size} must be a positive integer")
    given = sum(s for s in sizes if s is not None)
    if given > n:
        raise DataError(f"dataset {name!r}: requested {given} points "
                        f"(n_train={n_train}, n_valid={n_valid}, n_test={n_test}) but only {n} exist")
    missing = [i for i, s in enumerate(sizes) if s is None]
    share = sum(DEFAULT_FRACTIONS[i] for i in missing)
    for i in missing:
        sizes[i] = max(1, int((n - given) * DEFAULT_FRACTIONS[i] / share))
    return tuple(sizes)  # type: ignore[return-value]


def make_splits(name: str, x: np.ndarray, y: np.ndarray, seed: int, n_classes: int | None = None,
                n_train: int | None = None, n_valid: int | None = None, n_test: int | None = None,
                meta: dict[str, Any] | None = None) -> Dataset:
    """Split ``(x, y)`` into stratified train/valid/test sets of the given sizes, reproducibly for ``seed``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if len(x) != len(y):
        raise DataError(f"dataset {name!r}: {len(x)} feature rows but {len(y)} labels")
    if not np.isfinite(x).all():
        raise DataError(f"dataset {name!r}: {int((~np.isfinite(x)).any(axis=1).sum())} rows contain NaN or inf")
    classes, y = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"dataset {name!r}: one class only ({classes.tolist()}); valuation needs at least two")
    sizes = split_sizes(name, len(y), n_train, n_valid, n_test)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=sizes[2], stratify=y, random_state=seed)
    train, valid = train_test_split(rest, train_size=sizes[0], test_size=sizes[1], stratify=y[rest],
                                    random_state=seed + 1)
    x_train, x_valid, x_test = standardise(x[train], x[valid], x[test])
    return Dataset(name=name, x_train=x_train, y_train=y[train], x_valid=x_valid, y_valid=y[valid],
                   x_test=x_test, y_test=y[test], n_classes=n_classes or len(classes),
                   meta={"seed": seed, "n_total": len(y), **(meta or {})})
