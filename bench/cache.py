"""A disk cache of subset test performance: retraining the learner on a subset it has already seen is free.

The metrics retrain the learner on the same points many times over a grid: the full-data reference fit
once per method cell of a (dataset, seed, noise), the same random or top-k subsets under several methods,
and every fit again when a grid is rerun under a new run id. A fit is deterministic given the data, the
learner's hyper-parameters and seed, and the (sorted) subset, so its test accuracy and loss are keyed by

    (fingerprint of the dataset's arrays, the learner's description and seed, hash of the sorted indices
     and, for a weighted coreset, of their sample weights)

and stored with ``joblib.Memory``, whose writes go to a temporary file renamed into place: processes and
cluster workers that share the directory may read and write concurrently. The dataset fingerprint hashes
the train labels (noise included), features and test split themselves, so it covers the loader's
parameters, seed and noise rate without trusting names.

The cache lives in ``<reports root>/.cache/fits`` for ``python -m valbench run`` (``$VALBENCH_CACHE_DIR``
overrides it; ``--no-cache`` turns it off). Deleting the directory is always safe.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

CACHE_ENV = "VALBENCH_CACHE_DIR"
ENTRY_FORMAT = 2  # what an entry holds: 2 = accuracy, balanced accuracy and loss (1 had no balanced accuracy)


def default_cache_dir(out: str | Path) -> Path:
    """Where a run under reports root ``out`` caches fits: ``$VALBENCH_CACHE_DIR`` or ``out/.cache/fits``."""
    return Path(os.environ.get(CACHE_ENV) or Path(out) / ".cache" / "fits")


def array_digest(*arrays: np.ndarray) -> str:
    """A content hash of arrays (dtype, shape and bytes)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:24]


def dataset_fingerprint(data: Any) -> str:
    """Identity of a dataset for caching: its train / test arrays (noisy labels included) and class count."""
    return f"{data.name}-{data.n_classes}-" + array_digest(data.x_train, data.y_train, data.x_test, data.y_test)


def learner_fingerprint(learner: Any) -> str:
    """Identity of a learner: its class, described hyper-parameters, tolerance and seed."""
    desc = {**learner.describe(), "class": type(learner).__qualname__, "tol": getattr(learner, "tol", None),
            "seed": getattr(learner, "seed", None), "n_features": learner.n_features, "n_classes": learner.n_classes}
    return hashlib.sha256(repr(sorted(desc.items())).encode()).hexdigest()[:24]


def _performance(dataset_id: str, learner_id: str, subset_id: str, fit: Callable[[], dict[str, float]],
                 entry_format: int = ENTRY_FORMAT):
    """The cached function: its result depends only on the three ids and the entry format (``fit`` is ignored
    by the hash), so entries written before a metric was added are misses, never returned without it."""
    return fit()


class FitCache:
    """Subset test performance cached on disk, with hit / miss counts for this process's use of it."""

    def __init__(self, directory: str | Path) -> None:
        from joblib import Memory

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._memory = Memory(str(self.directory), verbose=0)
        self._cached = self._memory.cache(_performance, ignore=["fit"])
        self.hits = 0
        self.misses = 0

    def performance(self, data: Any, learner: Any, indices: np.ndarray | None,
                    fit: Callable[[], dict[str, float]], weights: np.ndarray | None = None,
                    variant: str = "") -> dict[str, float]:
        """``fit()`` (test accuracy and loss of ``learner`` on ``indices``) from the cache when present.

        ``weights`` (a weighted coreset) must be aligned with ``indices`` sorted ascending. ``variant`` names an
        entry that records more than the plain fit (e.g. ``"timed"``: with its fit seconds), kept apart."""
        subset_id = "all" if indices is None else array_digest(np.sort(np.asarray(indices, dtype=np.int64)))
        if variant:
            subset_id += f"-{variant}"
        if weights is not None:
            subset_id += "-w" + array_digest(np.asarray(weights, dtype=np.float64))
        key = (dataset_fingerprint(data), learner_fingerprint(learner), subset_id)
        try:
            hit = self._cached.check_call_in_cache(*key, fit, ENTRY_FORMAT)
        except Exception:  # noqa: BLE001 - a damaged entry is a miss; joblib recomputes and rewrites it
            hit = False
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        return dict(self._cached(*key, fit, ENTRY_FORMAT))

    def counts(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}
