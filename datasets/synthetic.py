"""The ``synthetic`` set: built so that valuing a *set* beats valuing points one by one.

Ground truth is a labelled Voronoi partition: every class owns a few Gaussian cluster centres and a
point's clean label is the class of its nearest centre. The train split mixes three kinds of points
(recorded per point in ``meta["kind"]``):

* ``regular``   - drawn around the cluster centres, like the valid and test splits;
* ``redundant`` - dense near-duplicates around a few locations deep inside a class: per-point values rate
  each of them highly, but a good subset needs only a few;
* ``rare``      - sparse points next to the boundary between two classes' centres, which a good subset
  must keep because nothing else pins the boundary down.

Valid and test are drawn from the regular distribution only, so redundancy cannot inflate test accuracy.
Label noise is injected afterwards by the harness (:mod:`valbench.datasets.noise`).
"""

from __future__ import annotations

import numpy as np

from valbench.protocol import DataError, Dataset
from valbench.registry import register_dataset
from valbench.datasets.splits import standardise


def _nearest_class(x: np.ndarray, centres: np.ndarray, centre_class: np.ndarray) -> np.ndarray:
    d2 = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return centre_class[d2.argmin(axis=1)]


def _regular(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float) -> np.ndarray:
    which = rng.integers(0, len(centres), size=n)
    return centres[which] + spread * rng.normal(size=(n, centres.shape[1]))


@register_dataset("synthetic", "clustered classes with redundant near-duplicates and rare boundary points")
def load_synthetic(seed: int = 0, n_train: int = 600, n_valid: int = 300, n_test: int = 1000,
                   n_classes: int = 4, dim: int = 10, clusters_per_class: int = 3, redundancy: float = 0.5,
                   rare: float = 0.1, n_duplicate_sites: int = 4, spread: float = 1.0,
                   separation: float = 3.0) -> Dataset:
    """Generate the set for ``seed``; ``redundancy`` and ``rare`` are fractions of the train split."""
    if not (0 <= redundancy < 1 and 0 <= rare < 1 and redundancy + rare < 1):
        raise DataError(f"dataset 'synthetic': redundancy={redundancy} and rare={rare} must be fractions "
                        "in [0, 1) that sum to less than 1")
    if n_classes < 2 or clusters_per_class < 1 or dim < 1:
        raise DataError(f"dataset 'synthetic': need n_classes >= 2, clusters_per_class >= 1, dim >= 1; got "
                        f"{n_classes}, {clusters_per_class}, {dim}")
    rng = np.random.default_rng(seed)
    centres = separation * rng.normal(size=(n_classes * clusters_per_class, dim))
    centre_class = np.repeat(np.arange(n_classes), clusters_per_class)

    n_redundant = int(round(redundancy * n_train))
    n_rare = int(round(rare * n_train))
    n_regular = n_train - n_redundant - n_rare

    # near-duplicate sites: a few centres, each replicated with a tiny jitter
    sites = centres[rng.choice(len(centres), size=min(n_duplicate_sites, len(centres)), replace=False)]
    redundant = sites[rng.integers(0, len(sites), size=n_redundant)] + 0.02 * spread * rng.normal(
        size=(n_redundant, dim))

    # boundary points: between two centres of different classes, at the midpoint plus a small offset
    a = rng.integers(0, len(centres), size=4 * n_rare + 8)
    b = rng.integers(0, len(centres), size=len(a))
    pairs = np.flatnonzero(centre_class[a] != centre_class[b])[:n_rare]
    t = rng.uniform(0.4, 0.6, size=(len(pairs), 1))
    rare_x = (1 - t) * centres[a[pairs]] + t * centres[b[pairs]] + 0.1 * spread * rng.normal(size=(len(pairs), dim))

    x_train = np.concatenate([_regular(rng, n_regular, centres, spread), redundant, rare_x])
    kind = np.array(["regular"] * n_regular + ["redundant"] * n_redundant + ["rare"] * len(pairs))
    order = rng.permutation(len(x_train))
    x_train, kind = x_train[order], kind[order]
    x_valid = _regular(rng, n_valid, centres, spread)
    x_test = _regular(rng, n_test, centres, spread)
    labels = [_nearest_class(x, centres, centre_class) for x in (x_train, x_valid, x_test)]
    x_train, x_valid, x_test = standardise(x_train, x_valid, x_test)
    return Dataset(name="synthetic", x_train=x_train, y_train=labels[0], x_valid=x_valid, y_valid=labels[1],
                   x_test=x_test, y_test=labels[2], n_classes=n_classes,
                   meta={"seed": seed, "kind": kind, "redundancy": redundancy, "rare": rare})
