import itertools
from math import comb

import numpy as np
import pytest

from valbench.methods.knn_shapley import knn_shapley_values


def knn_utility(subset, x_train, y_train, x_valid, y_valid, k):
    """U(S) of Jia et al.: mean over validation points of the fraction of the K nearest in S with its label."""
    if not subset:
        return 0.0
    total = 0.0
    for xv, yv in zip(x_valid, y_valid):
        d = np.linalg.norm(x_train[list(subset)] - xv, axis=1)
        nearest = np.array(subset)[np.argsort(d, kind="stable")[:k]]
        total += (y_train[nearest] == yv).sum() / k
    return total / len(y_valid)


def exact_shapley(n, utility):
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            for s in itertools.combinations(others, size):
                weight = 1 / (n * comb(n - 1, size))
                values[i] += weight * (utility(sorted(s + (i,))) - utility(list(s)))
    return values


@pytest.mark.parametrize("n, k, seed", [(6, 1, 0), (7, 3, 1), (8, 2, 2), (8, 10, 3)])
def test_closed_form_equals_enumeration_of_all_subsets(n, k, seed):
    rng = np.random.default_rng(seed)
    x_train, y_train = rng.normal(size=(n, 2)), rng.integers(0, 2, size=n)
    x_valid, y_valid = rng.normal(size=(4, 2)), rng.integers(0, 2, size=4)
    expected = exact_shapley(n, lambda s: knn_utility(s, x_train, y_train, x_valid, y_valid, k))
    got = knn_shapley_values(x_train, y_train, x_valid, y_valid, k, chunk=3)
    assert np.allclose(got, expected, atol=1e-9)


def test_values_sum_to_the_full_utility():
    """Efficiency: Shapley values add up to U(D) - U(empty)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 5)), rng.integers(0, 3, size=200)
    xv, yv = rng.normal(size=(30, 5)), rng.integers(0, 3, size=30)
    assert knn_shapley_values(x, y, xv, yv, 5).sum() == pytest.approx(knn_utility(list(range(200)), x, y, xv, yv, 5))
