"""Deterministic stratified train/valid/test splits with standardisation fitted on the train split only.

Every class lands in every split (when it has a row per split), however rare: Shuttle's smallest classes have
10 and 13 of 58,000 rows, and a proportional split of 1,000 points would give them none. Per class, the
split sizes are the proportional shares rounded by largest remainder, at least one each (:func:`bounded_shares`).
The rows are drawn from their own random stream per (seed, dataset) (:func:`valbench.streams.stream`), so two
datasets of the same size are not split at the same positions.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from valbench.protocol import DataError, Dataset
from valbench.streams import stream

DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
SPLITS = ("n_train", "n_valid", "n_test")


def standardise(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centre and scale every array by the train split's mean and std (constant features left at scale 1)."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std < 1e-8] = 1.0
    return [((a - mean) / std).astype(np.float32) for a in (x_train, *others)]


def _size(name: str, label: str, size: Any, n: int) -> int | None:
    """A requested split size as a count: a point count >= 1, or a fraction of the ``n`` rows in (0, 1)."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, numbers.Real) or not size > 0 \
            or (size >= 1 and not float(size).is_integer()):
        raise DataError(f"dataset {name!r}: {label}={size!r} must be a point count >= 1 or a fraction "
                        "of the rows in (0, 1)")
    return max(1, int(round(size * n))) if size < 1 else int(size)


def split_sizes(name: str, n: int, n_train: float | None, n_valid: float | None,
                n_test: float | None) -> tuple[int, int, int]:
    """Split sizes: point counts (>= 1) or fractions of the ``n`` rows in (0, 1), with any missing ones
    taking the default fractions of what remains."""
    return _fill(name, n, dict(zip(SPLITS, (n_train, n_valid, n_test))), dict(zip(SPLITS, DEFAULT_FRACTIONS)))


def _fill(name: str, n: int, requested: dict[str, Any], fractions: dict[str, float]) -> tuple[int, ...]:
    sizes = {label: _size(name, label, size, n) for label, size in requested.items()}
    given = sum(s for s in sizes.values() if s is not None)
    if given > n:
        said = ", ".join(f"{label}={size}" for label, size in requested.items())
        raise DataError(f"dataset {name!r}: requested {given} points ({said}) but only {n} exist")
    missing = [label for label, s in sizes.items() if s is None]
    share = sum(fractions[label] for label in missing)
    for label in missing:
        sizes[label] = max(1, int((n - given) * fractions[label] / share))
    return tuple(sizes.values())  # type: ignore[return-value]


def check_stratifiable(name: str, classes: np.ndarray, counts: np.ndarray, sizes: tuple[int, ...],
                       labels: tuple[str, ...] = SPLITS) -> None:
    """Stratified splits need every class in every split: a row per class and split at least, and each
    split at least as large as the number of classes."""
    if counts.min() < len(sizes):
        rare = [classes[i].item() for i in np.flatnonzero(counts < len(sizes))]
        raise DataError(f"dataset {name!r}: class(es) {rare[:10]} have fewer than {len(sizes)} rows "
                        f"({int(counts.min())} at least); stratified {'/'.join(s[2:] for s in labels)} splits "
                        f"need {len(sizes)} per class: drop or merge them")
    for label, size in zip(labels, sizes):
        if size < len(classes):
            raise DataError(f"dataset {name!r}: {label}={size} is smaller than its {len(classes)} classes; "
                            "every split needs a point of each class")


def bounded_shares(total: int, counts: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Integers ``s_c`` in ``[low_c, high_c]`` summing to ``total``, as close to the proportional shares
    ``total * counts_c / sum(counts)`` as the bounds allow: floors first, then one unit at a time to the class
    furthest below (or, when the lower bounds overshoot, from the class furthest above) its share; ties go to
    the lowest class. Needs ``sum(low) <= total <= sum(high)``."""
    counts, low, high = (np.asarray(a, dtype=np.int64) for a in (counts, low, high))
    if not (low <= high).all() or not low.sum() <= total <= high.sum():
        raise ValueError(f"no shares of {total} within bounds summing to [{low.sum()}, {high.sum()}]")
    quota = total * counts / counts.sum()
    out = np.clip(np.floor(quota).astype(np.int64), low, high)
    while out.sum() < total:
        out[np.argmax(np.where(out < high, quota - out, -np.inf))] += 1
    while out.sum() > total:
        out[np.argmin(np.where(out > low, quota - out, np.inf))] -= 1
    return out


def stratified_parts(y: np.ndarray, sizes: tuple[int, ...], rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes, each holding every class of ``y`` (codes 0..C-1) at least
    once and otherwise in proportion to the rows still unassigned; each set's order is shuffled."""
    counts = np.bincount(y)
    remaining = counts.copy()
    # one permutation, then grouped by class: each class's rows in random order, taken front to back
    order = rng.permutation(len(y))
    order = order[np.argsort(y[order], kind="stable")]
    rank = np.empty(len(y), dtype=np.int64)
    rank[order] = np.arange(len(y)) - np.repeat(np.cumsum(counts) - counts, counts)
    taken = np.zeros_like(counts)
    parts = []
    for j, size in enumerate(sizes):
        reserve = len(sizes) - j - 1  # one row per class for each later split
        share = bounded_shares(size, remaining, np.ones_like(counts), remaining - reserve)
        chosen = np.flatnonzero((rank >= taken[y]) & (rank < (taken + share)[y]))
        parts.append(rng.permutation(chosen))
        taken += share
        remaining -= share
    return parts


def make_splits(name: str, x: np.ndarray, y: np.ndarray, seed: int, n_classes: int | None = None,
                n_train: float | None = None, n_valid: float | None = None, n_test: float | None = None,
                meta: dict[str, Any] | None = None, test: tuple[np.ndarray, np.ndarray] | None = None,
                scale: bool = True, row_ids: np.ndarray | None = None) -> Dataset:
    """Split ``(x, y)`` into stratified train/valid/test sets of the given sizes, reproducibly for ``seed``.

    ``test``: a source's standard test split ``(x_test, y_test)`` (e.g. Fashion-MNIST's t10k). Then ``(x, y)``
    is the pool for train and valid only (missing sizes: 75 / 25 % of it, the default 60:20 ratio), and
    ``n_test`` takes a stratified sample of the standard test split (all of it by default).
    ``scale``: standardise the features on the train split (the default); off, they keep their own units
    (images keep pixels in [0, 1]). Rows are converted to float only once selected (a 60,000-image pool
    stays uint8).
    ``row_ids``: an id per row of ``(x, y)`` (default: the row's index into it); the train rows' ids are kept in
    ``meta["train_ids"]``, so a per-point value can be traced back to its row of the source (the scores files).
    """
    x, y = _checked(name, x, y)
    row_ids = np.arange(len(y)) if row_ids is None else np.asarray(row_ids)
    if row_ids.shape != (len(y),):
        raise DataError(f"dataset {name!r}: {row_ids.shape} row ids for {len(y)} rows")
    if test is not None:
        test = _checked(name, *test)
    y_all = y if test is None else np.concatenate([y, test[1]])
    classes, codes = np.unique(y_all, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"dataset {name!r}: one class only ({classes.tolist()}); valuation needs at least two")
    rng = stream(seed, name, "split")
    if test is None:
        sizes = split_sizes(name, len(y), n_train, n_valid, n_test)
        check_stratifiable(name, classes, np.bincount(codes, minlength=len(classes)), sizes)
        test_idx, train, valid = stratified_parts(codes, (sizes[2], sizes[0], sizes[1]), rng)
        x_test, y_test = x[test_idx], codes[test_idx]
    else:
        pool, codes_test = codes[: len(y)], codes[len(y):]
        sizes = _fill(name, len(y), {"n_train": n_train, "n_valid": n_valid}, {"n_train": 0.75, "n_valid": 0.25})
        check_stratifiable(name, classes, np.bincount(pool, minlength=len(classes)), sizes, SPLITS[:2])
        train, valid = stratified_parts(pool, sizes, rng)
        codes = pool
        n_test = len(codes_test) if n_test is None else _size(name, "n_test", n_test, len(codes_test))
        if n_test > len(codes_test):
            raise DataError(f"dataset {name!r}: n_test={n_test} but its standard test split has "
                            f"{len(codes_test)} points")
        check_stratifiable(name, classes, np.bincount(codes_test, minlength=len(classes)), (n_test,),
                           SPLITS[2:])
        (pick,) = stratified_parts(codes_test, (n_test,), rng)
        x_test, y_test = test[0][pick], codes_test[pick]
    x_train, x_valid, x_test = (standardise if scale else _as_float32)(x[train], x[valid], x_test)
    return Dataset(name=name, x_train=x_train, y_train=codes[train], x_valid=x_valid, y_valid=codes[valid],
                   x_test=x_test, y_test=y_test, n_classes=n_classes or len(classes),
                   meta={"seed": seed, "n_total": len(y_all), **(meta or {}), "train_ids": row_ids[train]})


def _as_float32(*arrays: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def _checked(name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        x = x.astype(np.float64)  # e.g. an object array of numbers: refused here if it holds anything else
    y = np.asarray(y)
    if len(x) != len(y):
        raise DataError(f"dataset {name!r}: {len(x)} feature rows but {len(y)} labels")
    if np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
        raise DataError(f"dataset {name!r}: {int((~np.isfinite(x)).any(axis=1).sum())} rows contain NaN or inf")
    return x, y
