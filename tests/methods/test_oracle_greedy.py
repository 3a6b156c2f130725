import numpy as np
import pytest

from valbench.learners import LogisticRegression
from valbench.methods.oracle_greedy import OracleGreedy
from tests.conftest import blobs


def brute_force_greedy(data, learner, k):
    """Explicit, unsampled greedy: every remaining point tried with a cold-started fit, at every step.

    A one-class subset's model is its limit: it predicts that class everywhere (loss +inf)."""
    order = []
    for _ in range(k):
        best = None
        for c in range(data.n_train):
            if c in order:
                continue
            idx = order + [c]
            if len(set(data.y_train[idx])) == 1:
                key = (-np.mean(data.y_valid == data.y_train[c]), np.inf, c)
            else:
                model = learner.fit(data.x_train[idx], data.y_train[idx])
                key = (-model.accuracy(data.x_valid, data.y_valid), model.loss(data.x_valid, data.y_valid), c)
            best = key if best is None or key < best else best
        order.append(best[2])
    return order


@pytest.mark.parametrize("newton_max_params", [256, 0])  # batched Newton, and the learner's own L-BFGS
def test_unsampled_greedy_equals_explicit_brute_force(newton_max_params):
    data = blobs(n_train=14, n_valid=25, n_classes=2, dim=2, seed=5)
    # l2 = 0.1: tiny separable subsets then have a well-conditioned optimum that every solver reaches
    learner = LogisticRegression(data.n_features, data.n_classes, l2=0.1)
    v = OracleGreedy(pool=0, newton_max_params=newton_max_params).fit(data, learner, 0, [2, 5])
    v.validate("oracle-greedy", data.n_train, [2, 5])
    order = np.argsort(-v.scores, kind="stable")[:5].tolist()
    assert order == brute_force_greedy(data, learner, 5)
    assert set(v.subsets[2]) == set(order[:2]) and set(v.subsets[5]) == set(order)
    one_class = [1 if t == 0 else int((data.y_train == data.y_train[order[0]]).sum()) - 1 for t in range(2)]
    assert v.utility_evals == sum(14 - t for t in range(5)) - 14 - (one_class[1])


def test_sampled_pool_is_seeded_and_costs_pool_fits_per_step(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    a = OracleGreedy(pool=5).fit(small_data, learner, 1, [4])
    b = OracleGreedy(pool=5).fit(small_data, learner, 1, [4])
    assert np.array_equal(a.scores, b.scores) and 15 <= a.utility_evals <= 20  # the first step needs no fit
    with pytest.raises(ValueError, match="pool must be >= 0"):
        OracleGreedy(pool=-1).fit(small_data, learner, 0, [4])
