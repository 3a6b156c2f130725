import itertools
import math

import numpy as np
import pytest
import torch

from valbench.learners import LogisticRegression
from valbench.registry import get_method
from valbench.methods.tmc_shapley import BatchedPrefixFits
from valbench.methods.utility import Utility
from tests.conftest import blobs


def exact_shapley(u: dict[tuple, float], n: int) -> np.ndarray:
    """phi_i = sum_{S not containing i} |S|! (n-|S|-1)! / n! (U(S + i) - U(S)), from every subset's utility."""
    phi = np.zeros(n)
    for s, value in u.items():
        for i in set(range(n)) - set(s):
            weight = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
            phi[i] += weight * (u[tuple(sorted(s + (i,)))] - value)
    return phi


def tiny():
    data = blobs(n_train=8, n_valid=60, n_classes=2, dim=2, seed=4)
    data.y_train[5] = 1 - data.y_train[5]  # one mislabelled point, so values differ in sign
    return data


@pytest.fixture(scope="module")
def tiny_game():
    """The tiny dataset, its learner, and U(S) of all 256 subsets (enumerated once for the module)."""
    data = tiny()
    learner = LogisticRegression(data.n_features, data.n_classes, l2=0.1, max_iter=200)
    return data, learner, subset_utilities(Utility(data, learner, "accuracy"), data.n_train)


@pytest.mark.parametrize("block, permutations", [(16, 400), (0, 100)])  # batched Newton; the learner's own fits
def test_tmc_matches_exact_shapley_within_three_standard_errors(block, permutations, tiny_game):
    data, learner, u = tiny_game
    exact = exact_shapley(u, data.n_train)
    got = get_method("tmc-shapley")(tolerance=0.0, max_permutations=permutations, min_permutations=permutations,
                                    block=block).fit(data, learner, seed=1)
    assert got.extra["permutations"] == permutations
    assert got.utility_evals == 2 + permutations * data.n_train  # no truncation at tolerance 0
    assert np.all(got.stderr > 0)
    assert np.all(np.abs(got.scores - exact) <= 3 * got.stderr), (got.scores, exact, got.stderr)
    assert np.isclose(got.scores.sum(), got.extra["full_score"] - got.extra["empty_score"])  # efficiency


def test_batched_prefix_fits_match_the_learner():
    data = blobs(n_train=40, n_valid=50, n_classes=3, dim=4, seed=0)
    learner = LogisticRegression(data.n_features, data.n_classes, l2=0.05, max_iter=300, tol=1e-8)
    utility = Utility(data, learner, "neg_loss")
    order = np.random.default_rng(0).permutation(data.n_train)
    solver = BatchedPrefixFits(utility)
    sizes = torch.arange(5, 41)
    got = solver.scores(solver.solve(torch.as_tensor(order), sizes, torch.zeros(3, 5, dtype=torch.float64)))
    expected = [utility(order[:k]) for k in sizes.tolist()]
    assert np.allclose(got.numpy(), expected, atol=1e-4)  # the learner fits in float32


def test_truncation_convergence_and_determinism(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    method = get_method("tmc-shapley")(max_permutations=20, window=10, convergence=0.5)
    a = method.fit(small_data, learner, seed=3)
    assert a.utility_evals < 2 + 20 * small_data.n_train  # truncation saved fits
    assert a.extra["permutations"] <= 20
    b = method.fit(small_data, learner, seed=3)
    assert np.array_equal(a.scores, b.scores)
    parallel = get_method("tmc-shapley")(max_permutations=20, window=10, convergence=0.5, n_jobs=2)
    assert np.allclose(parallel.fit(small_data, learner, seed=3).scores, a.scores)  # seeds per permutation
    assert a.stderr.shape == (small_data.n_train,)


def subset_utilities(utility: Utility, n: int) -> dict[tuple, float]:
    u = {(): utility.empty}
    for size in range(1, n + 1):
        for s in itertools.combinations(range(n), size):
            u[s] = utility(np.array(s))
    return u


def test_beta_position_weights():
    from valbench.methods.semivalues import beta_position_weights
    assert np.allclose(beta_position_weights(7, 1.0, 1.0), 1.0)  # Beta(1, 1) is Data Shapley
    w = beta_position_weights(50, 16.0, 1.0)
    assert np.isclose(w.mean(), 1.0) and w[0] > w[-1]


def test_beta_shapley_and_banzhaf_match_enumeration(tiny_game):
    from valbench.methods.semivalues import beta_position_weights
    data, learner, u = tiny_game
    n = data.n_train
    w = beta_position_weights(n, 4.0, 1.0)
    beta_exact, banzhaf_exact = np.zeros(n), np.zeros(n)
    for s, value in u.items():
        for i in set(range(n)) - set(s):
            gain = u[tuple(sorted(s + (i,)))] - value
            beta_exact[i] += w[len(s)] / n / math.comb(n - 1, len(s)) * gain
            banzhaf_exact[i] += gain / 2 ** (n - 1)
    beta = get_method("beta-shapley")(alpha=4.0, beta=1.0, tolerance=0.0, max_permutations=400,
                                      min_permutations=400, block=16).fit(data, learner, seed=2)
    assert np.all(np.abs(beta.scores - beta_exact) <= 3 * beta.stderr), (beta.scores, beta_exact, beta.stderr)
    banzhaf = get_method("banzhaf")(num_subsets=1000).fit(data, learner, seed=2)
    assert banzhaf.extra["solver"] == "batched-newton"
    assert np.all(np.abs(banzhaf.scores - banzhaf_exact) <= 3 * banzhaf.stderr), (banzhaf.scores, banzhaf_exact)
    sequential = get_method("banzhaf")(num_subsets=40, block=0).fit(data, learner, seed=2)
    batched = get_method("banzhaf")(num_subsets=40).fit(data, learner, seed=2)
    assert np.allclose(sequential.scores, batched.scores, atol=1e-9)  # same subsets, same optima
