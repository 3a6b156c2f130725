import itertools

import numpy as np
import pytest
from scipy.optimize import nnls

from valbench.learners import LogisticRegression
from valbench.methods.gradmatch import GradMatch, orthogonal_matching_pursuit
from valbench.methods.selection import class_budgets, last_layer_gradients


@pytest.mark.parametrize("seed", range(5))
def test_omp_weights_are_the_nnls_solution_on_its_support(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(6, 12))
    b = a[:, :8] @ rng.uniform(0.2, 2, size=8)  # a non-negative combination: reachable
    support, w = orthogonal_matching_pursuit(a, b, k=4, lam=0.0)
    assert len(support) and (w >= 0).all()
    nnls_w, nnls_residual = nnls(a[:, support], b)
    assert np.allclose(w, nnls_w, atol=1e-8)
    assert np.linalg.norm(b - a[:, support] @ w) == pytest.approx(nnls_residual, abs=1e-8)
    # no k-subset fits b better than the best subset NNLS finds by enumeration, and OMP is not far off
    best = min(nnls(a[:, list(s)], b)[1] for s in itertools.combinations(range(12), len(support)))
    assert best <= nnls_residual + 1e-9


def test_omp_recovers_an_exact_sparse_non_negative_combination():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 30))
    b = a[:, [3, 17]] @ np.array([2.0, 0.5])
    support, w = orthogonal_matching_pursuit(a, b, k=5, lam=0.0)
    assert sorted(support.tolist()) == [3, 17] and np.allclose(w[np.argsort(support)], [2.0, 0.5])


def test_method_splits_budgets_by_class_and_weights_match_the_class_gradient(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    budgets = [6, 15, 30]
    v = GradMatch(lam=0.0).fit(small_data, learner, 0, budgets).validate("gradmatch", 60, budgets)
    y = small_data.y_train
    for k in budgets:
        assert {c: int((y[v.subsets[k]] == c).sum()) for c in range(3)} == class_budgets(y, k)
    grads = last_layer_gradients(learner.fit(small_data.x_train, y), small_data.x_train, y)
    idx, w = v.subsets[15], v.weights[15]
    for c in range(3):
        target = grads[y == c].sum(0)
        matched = (w[y[idx] == c, None] * grads[idx[y[idx] == c]]).sum(0)
        assert np.linalg.norm(matched - target) < 0.5 * np.linalg.norm(target)
    assert GradMatch(weighted=False).fit(small_data, learner, 0, budgets).weights is None
    with pytest.raises(ValueError, match="target must be"):
        GradMatch(target="test").fit(small_data, learner, 0, budgets)
