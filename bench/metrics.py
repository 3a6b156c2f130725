"""What the harness measures from a valuation: subset value, mislabel detection, and the budgets themselves.

Value never leaks into evaluation: subsets are scored by retraining the learner from scratch on the
(noisy) train labels of the chosen points and measuring the clean test split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import balanced_accuracy_score

from valbench.learners import Learner
from valbench.protocol import DataError, Dataset, Valuation

if TYPE_CHECKING:
    from valbench.cache import FitCache

DEFAULT_BUDGETS = (0.05, 0.1, 0.2, 0.3, 0.5)
DETECTION_GRID = np.linspace(0.0, 1.0, 21)
# A dataset whose train split's majority class holds more than this share is judged on balanced accuracy: there,
# predicting the majority class for every point already scores that share in accuracy (caravan 94 %, shuttle
# 79 %), so accuracy cannot tell a useful subset from a useless one. spam (61 %) and breast_cancer (63 %) stay
# on accuracy, as do the balanced sets.
IMBALANCE_SHARE = 0.7


def check_budget_fractions(budgets: Sequence[float]) -> list[float]:
    """Budgets are fractions in (0, 1] of the train split, or whole counts > 1 checked per dataset."""
    checked = []
    for b in budgets:
        b = float(b)
        if not np.isfinite(b) or b <= 0 or (b > 1 and not b.is_integer()):
            raise DataError(f"budget {b} is invalid: give fractions of the train split in (0, 1] "
                            "or whole point counts (e.g. 0.1 or 50)")
        checked.append(b)
    return checked


def budget_sizes(budgets: Sequence[float], n_train: int, dataset: str) -> list[int]:
    """Subset sizes k for a train split of ``n_train`` points (each at least 1)."""
    sizes = []
    for b in check_budget_fractions(budgets):
        k = max(1, int(round(b * n_train))) if b <= 1 else int(b)
        if k > n_train:
            raise DataError(f"dataset {dataset!r}: budget {int(b)} points exceeds its {n_train} train points")
        sizes.append(k)
    return sizes


def rank_by_value(scores: np.ndarray, seed: int = 0) -> np.ndarray:
    """Train indices from most to least valuable; ties are broken at random (seeded), never by index."""
    tie_break = np.random.default_rng(seed).permutation(len(scores))
    return np.lexsort((tie_break, -np.asarray(scores)))


def select_subset(valuation: Valuation, k: int, seed: int = 0) -> np.ndarray:
    """The method's own subset of size ``k`` where it selects sets, else its ``k`` highest-valued points."""
    if valuation.subsets is not None and k in valuation.subsets:
        return valuation.subsets[k]
    return rank_by_value(valuation.scores, seed)[:k]


def judged_metric(class_shares: Sequence[float]) -> str:
    """The metric a dataset is judged on: ``"balanced_accuracy"`` when its train split's majority class holds
    more than :data:`IMBALANCE_SHARE` of the points, else ``"accuracy"``."""
    return "balanced_accuracy" if max(class_shares) > IMBALANCE_SHARE else "accuracy"


def class_balance(data: Dataset) -> dict[str, object]:
    """The train split's class shares and the test scores of the constant predictor of its majority class.

    The shares are those of the clean train labels (a property of the dataset, so one dataset is judged on one
    metric at every noise rate: 20 % flipped labels would pull shuttle's 79 % under the share). The constant
    predictor predicts the majority class of the train labels it is given (noisy ones included) for every
    point: the floor a subset must beat. Its accuracy is the test share of that class, its balanced accuracy
    (mean per-class recall) 1 / n_classes. A subset no better than it learned nothing, whatever its accuracy
    looks like.
    """
    clean = data.y_train if data.y_train_clean is None else data.y_train_clean
    shares = np.bincount(np.asarray(clean, dtype=np.int64), minlength=data.n_classes)
    majority = int(np.argmax(np.bincount(np.asarray(data.y_train, dtype=np.int64), minlength=data.n_classes)))
    return {"train_class_shares": (shares / shares.sum()).tolist(),
            "constant_accuracy": float(np.mean(np.asarray(data.y_test) == majority)),
            "constant_balanced_accuracy": 1.0 / data.n_classes}


def test_performance(data: Dataset, learner: Learner, indices: np.ndarray | None = None,
                     cache: "FitCache | None" = None, weights: np.ndarray | None = None) -> dict[str, float]:
    """Test accuracy, balanced accuracy (mean per-class recall) and mean cross-entropy of ``learner`` retrained
    on the given train points (all if None); both accuracies come from the same refit's predictions.

    ``weights`` (aligned with ``indices``) are per-sample weights of the retraining (a weighted coreset).
    The points are used in index order, so a subset's fit does not depend on how it was ranked and can be
    looked up in ``cache`` (a :class:`valbench.cache.FitCache`) under its sorted indices (and weights).
    """
    if indices is not None:
        order = np.argsort(np.asarray(indices), kind="stable")
        indices = np.asarray(indices)[order]
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)[order]

    def fit() -> dict[str, float]:
        x, y = (data.x_train, data.y_train) if indices is None else (data.x_train[indices], data.y_train[indices])
        model = learner.fit(x, y, weight=weights)
        return {"accuracy": model.accuracy(data.x_test, data.y_test), "loss": model.loss(data.x_test, data.y_test),
                "balanced_accuracy": float(balanced_accuracy_score(np.asarray(data.y_test),
                                                                   model.predict(data.x_test)))}

    return fit() if cache is None else cache.performance(data, learner, indices, fit, weights)


def timed_full_performance(data: Dataset, learner: Learner,
                           cache: "FitCache | None" = None) -> tuple[dict[str, float], "Cost"]:
    """:func:`test_performance` on the whole train split with the fit's wall and CPU seconds (a ``Cost``).

    This fit is the same for every method cell of a (dataset, seed, noise, learner): with ``cache`` it is trained
    and timed once, and its result and timing are read back by the others (a 20,000-point logistic regression is
    about a sixth of a cell's refits). The timing is that of the fit which made the entry.
    """
    from valbench.measure import Cost, measure

    def fit() -> dict[str, float]:
        performance, cost = measure(lambda: test_performance(data, learner))
        return {**performance, "fit_s": cost.wall_s, "fit_cpu_s": cost.cpu_s, "fit_peak_rss_mb": cost.peak_rss_mb}

    out = fit() if cache is None else cache.performance(data, learner, None, fit, variant="timed")
    cost = Cost(wall_s=out.pop("fit_s"), cpu_s=out.pop("fit_cpu_s"), peak_rss_mb=out.pop("fit_peak_rss_mb"))
    return out, cost


def subset_value(data: Dataset, learner: Learner, valuation: Valuation, budgets: Sequence[float],
                 seed: int = 0, cache: "FitCache | None" = None) -> list[dict[str, float]]:
    """Test accuracy, balanced accuracy and loss of the learner retrained on the selected subset, at every budget.

    Where the method returned weights for its subset of size k, the retraining uses them (``weighted``).
    """
    rows = []
    for fraction, k in zip(budgets, budget_sizes(budgets, data.n_train, data.name)):
        idx = select_subset(valuation, k, seed)
        weights = (valuation.weights or {}).get(k)  # validate(): weights only come with the method's own subset k
        rows.append({"budget": float(fraction), "k": k, **test_performance(data, learner, idx, cache, weights),
                     "noisy_selected": float(data.noisy_mask[idx].mean()), "weighted": weights is not None})
    return rows


def mislabel_auc(scores: np.ndarray, noisy_mask: np.ndarray) -> float | None:
    """ROC-AUC of detecting flipped labels with suspicion = -value (Mann-Whitney U, ties count half).

    None when there is nothing to detect (no flipped label, or only flipped labels).
    """
    noisy_mask = np.asarray(noisy_mask, dtype=bool)
    n_pos, n_neg = int(noisy_mask.sum()), int((~noisy_mask).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(-np.asarray(scores, dtype=np.float64))
    return float((ranks[noisy_mask].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_curve(scores: np.ndarray, noisy_mask: np.ndarray, seed: int = 0,
                    grid: np.ndarray = DETECTION_GRID) -> dict[str, list[float]] | None:
    """Fraction of flipped labels found when inspecting the lowest-valued points first, on a grid of fractions."""
    noisy_mask = np.asarray(noisy_mask, dtype=bool)
    if not noisy_mask.any():
        return None
    order = rank_by_value(scores, seed)[::-1]  # least valuable first
    found = np.concatenate([[0], np.cumsum(noisy_mask[order])]) / noisy_mask.sum()
    inspected = np.round(grid * len(order)).astype(int)
    return {"inspected": grid.tolist(), "found": found[inspected].tolist()}


def two_means_split(values: np.ndarray) -> np.ndarray:
    """Indices of the lower cluster of the exact 2-means split of 1-D ``values`` (OpenDataVal's 2-NN clustering).

    Sorted ascending (stable), the split point s in 1..n-1 minimises the summed squared deviation of the two
    groups values[:s] and values[s:] from their means; the first minimiser wins, as in OpenDataVal 1.3.0's
    ``oned_twonn_clustering`` (Grønlund et al. 2017, exact k-means in 1-D). Vectorised with prefix sums.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(values, kind="stable")
    n = len(values)
    if n < 2:
        raise DataError(f"a 2-means split needs at least two values, got {n}")
    sums = np.concatenate([[0.0], np.cumsum(values[order])])
    squares = np.concatenate([[0.0], np.cumsum(values[order] ** 2)])

    def cost(i: np.ndarray, j: np.ndarray) -> np.ndarray:  # squared deviation of sorted[i..j], as OpenDataVal writes it
        total = sums[j + 1] - sums[i]
        mean = total / (j - i + 1)
        return mean**2 * (j - i + 1) + (squares[j + 1] - squares[i]) - 2 * mean * total

    split = np.arange(1, n)
    best = split[np.argmin(cost(np.zeros_like(split), split - 1) + cost(split, np.full_like(split, n - 1)))]
    return order[:best]


def kmeans_f1(scores: np.ndarray, noisy_mask: np.ndarray) -> float | None:
    """F1 of calling the lower 2-means cluster of the values "flipped" (OpenDataVal's ``noisy_detection``).

    F1 = 2 TP / (2 TP + FP + FN) against the flipped labels; None when no label was flipped.
    """
    noisy_mask = np.asarray(noisy_mask, dtype=bool)
    if not noisy_mask.any():
        return None
    flagged = np.zeros(len(noisy_mask), dtype=bool)
    flagged[two_means_split(scores)] = True
    tp = int((flagged & noisy_mask).sum())
    return 2 * tp / (2 * tp + int((flagged & ~noisy_mask).sum()) + int((~flagged & noisy_mask).sum()))


REMOVAL_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def removal_curve(data: Dataset, learner: Learner, scores: np.ndarray, fractions: Sequence[float] = REMOVAL_FRACTIONS,
                  seed: int = 0, cache: "FitCache | None" = None) -> dict[str, list[float]]:
    """Test accuracy of the learner retrained after removing the highest-valued fraction of the train split.

    The point-removal task of OpenDataVal (``remove_high_low``, "remove most influential first") and pyDVL:
    a good valuation loses accuracy fastest. Points are ranked by ``scores`` for every method, set selectors
    included (their scores rank points too: HOST-CP's are its accumulated selection weights), since removal
    asks which points matter most, not which subset of a size is best. Ties are broken at random (seeded).
    """
    order = rank_by_value(scores, seed)
    removed = [int(round(f * data.n_train)) for f in fractions]
    accuracy = [test_performance(data, learner, order[k:], cache)["accuracy"] for k in removed]
    return {"removed": [float(f) for f in fractions], "accuracy": accuracy}
