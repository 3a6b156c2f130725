import numpy as np
import pytest

from bench.learners import LogisticRegression
from bench.registry import get_method
from tests.conftest import blobs


@pytest.mark.parametrize("utility", ["accuracy", "neg_loss"])
def test_loo_equals_brute_force_retraining(utility):
    data = blobs(n_train=25, n_valid=40, seed=5)
    learner = LogisticRegression(data.n_features, data.n_classes, l2=0.05, max_iter=300)  # well conditioned
    got = get_method("loo")(utility=utility).fit(data, learner, seed=0).scores

    def u(model):
        return model.accuracy(data.x_valid, data.y_valid) if utility == "accuracy" else \
            -model.loss(data.x_valid, data.y_valid)

    full = u(learner.fit(data.x_train, data.y_train))
    expected = np.array([full - u(learner.fit(np.delete(data.x_train, i, 0), np.delete(data.y_train, i)))
                         for i in range(data.n_train)])  # cold starts: warm starting must not change the optimum
    assert np.allclose(got, expected, atol=1e-4)


def test_random_scores_are_reproducible(small_data):
    method = get_method("random")()
    a = method.fit(small_data, None, seed=3).scores
    assert np.array_equal(a, method.fit(small_data, None, seed=3).scores)
    assert not np.array_equal(a, method.fit(small_data, None, seed=4).scores)
