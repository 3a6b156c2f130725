import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from valbench.learners import MLP, LogisticRegression, make_learner


def _problem(n=1000, d=64, c=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=(d, c)) + 3 * rng.normal(size=(n, c))).argmax(1)
    return x, y


def test_logreg_matches_scikit_learn_optimum():
    x, y = _problem(n=300, d=8, c=3)
    l2 = 1e-2
    ours = LogisticRegression(8, 3, l2=l2, max_iter=500).fit(x, y)
    # sklearn minimises sum CE + 1/(2C) ||W||^2, ours mean CE + l2/2 ||W||^2: C = 1 / (l2 n)
    ref = SkLogisticRegression(C=1 / (l2 * len(y)), max_iter=5000, tol=1e-10).fit(x, y)
    assert np.allclose(ours.predict_proba(x), ref.predict_proba(x), atol=2e-3)


def test_weights_equal_duplication():
    x, y = _problem(n=100, d=5, c=3)
    learner = LogisticRegression(5, 3, max_iter=500)
    w = np.ones(100)
    w[:10] = 2
    weighted = learner.fit(x, y, weight=w)
    duplicated = learner.fit(np.concatenate([x, x[:10]]), np.concatenate([y, y[:10]]))
    assert np.allclose(weighted.predict_proba(x), duplicated.predict_proba(x), atol=1e-3)


def test_warm_start_reaches_the_same_optimum_faster():
    x, y = _problem(n=500, d=20, c=4)
    learner = LogisticRegression(20, 4)
    cold = learner.fit(x, y)
    warm = learner.fit(x[1:], y[1:], init=cold.state)
    again = learner.fit(x[1:], y[1:])
    assert np.allclose(warm.predict_proba(x), again.predict_proba(x), atol=1e-3)


def test_fit_is_deterministic_for_a_seed_and_counts_fits():
    x, y = _problem(n=200, d=6, c=3)
    a = MLP(6, 3, seed=1, max_iter=50).fit(x, y)
    learner = MLP(6, 3, seed=1, max_iter=50)
    b = learner.fit(x, y)
    assert np.array_equal(a.predict_proba(x), b.predict_proba(x))
    assert learner.fits == 1


def test_subset_missing_a_class_still_predicts_every_class():
    x, y = _problem(n=100, d=5, c=3)
    model = LogisticRegression(5, 3).fit(x[y != 2], y[y != 2])
    assert model.predict_proba(x).shape == (100, 3)


def test_bad_learner_arguments():
    with pytest.raises(ValueError, match="unknown learner 'svm'; valid: \\['logreg', 'mlp'\\]"):
        make_learner("svm", 3, 2)
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        LogisticRegression(3, 1)
