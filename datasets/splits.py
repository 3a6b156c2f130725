"""Deterministic stratified train/valid/test splits with standardisation fitted on the train split only."""

from __future__ import annotations

from typing import Any

import numbers

import numpy as np
from sklearn.model_selection import train_test_split

from valbench.protocol import DataError, Dataset

DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


def standardise(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centre and scale every array by the train split's mean and std (constant features left at scale 1)."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std < 1e-8] = 1.0
    return [((a - mean) / std).astype(np.float32) for a in (x_train, *others)]


def split_sizes(name: str, n: int, n_train: float | None, n_valid: float | None,
                n_test: float | None) -> tuple[int, int, int]:
    """Split sizes: point counts (>= 1) or fractions of the ``n`` rows in (0, 1), with any missing ones
    taking the default fractions of what remains."""
    sizes: list[int | None] = []
    for size, label in zip((n_train, n_valid, n_test), ("n_train", "n_valid", "n_test")):
        if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Real) or not size > 0
                                 or (size >= 1 and not float(size).is_integer())):
            raise DataError(f"dataset {name!r}: {label}={size!r} must be a point count >= 1 or a fraction "
                            "of the rows in (0, 1)")
        sizes.append(None if size is None else max(1, int(round(size * n))) if size < 1 else int(size))
    given = sum(s for s in sizes if s is not None)
    if given > n:
        raise DataError(f"dataset {name!r}: requested {given} points "
                        f"(n_train={n_train}, n_valid={n_valid}, n_test={n_test}) but only {n} exist")
    missing = [i for i, s in enumerate(sizes) if s is None]
    share = sum(DEFAULT_FRACTIONS[i] for i in missing)
    for i in missing:
        sizes[i] = max(1, int((n - given) * DEFAULT_FRACTIONS[i] / share))
    return tuple(sizes)  # type: ignore[return-value]


def check_stratifiable(name: str, classes: np.ndarray, counts: np.ndarray, sizes: tuple[int, int, int]) -> None:
    """Stratified train/valid/test splits need every class in every split: 3 rows per class at least, and
    each split at least as large as the number of classes."""
    if counts.min() < 3:
        rare = [classes[i].item() for i in np.flatnonzero(counts < 3)]
        raise DataError(f"dataset {name!r}: class(es) {rare[:10]} have fewer than 3 rows ({int(counts.min())} "
                        "at least); stratified train/valid/test splits need 3 per class: drop or merge them")
    for label, size in zip(("n_train", "n_valid", "n_test"), sizes):
        if size < len(classes):
            raise DataError(f"dataset {name!r}: {label}={size} is smaller than its {len(classes)} classes; "
                            "every split needs a point of each class")


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
    check_stratifiable(name, classes, np.bincount(y), sizes)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=sizes[2], stratify=y, random_state=seed)
    train, valid = train_test_split(rest, train_size=sizes[0], test_size=sizes[1], stratify=y[rest],
                                    random_state=seed + 1)
    x_train, x_valid, x_test = standardise(x[train], x[valid], x[test])
    return Dataset(name=name, x_train=x_train, y_train=y[train], x_valid=x_valid, y_valid=y[valid],
                   x_test=x_test, y_test=y[test], n_classes=n_classes or len(classes),
                   meta={"seed": seed, "n_total": len(y), **(meta or {})})
