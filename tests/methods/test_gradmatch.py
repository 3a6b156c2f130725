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


def plain_omp(a, b, k, lam):
    """Algorithm 1 written plainly: every refit from a fresh Gram matrix, one run per k."""
    support, w, residual = [], np.zeros(0), b.copy()
    for _ in range(k):
        if np.linalg.norm(residual) / np.linalg.norm(b) < 1e-6:
            break
        corr = a.T @ residual
        corr[support] = -np.inf
        if corr.max() <= 0:
            break
        support.append(int(np.argmax(corr)))
        refit = lambda: np.linalg.lstsq(a[:, support].T @ a[:, support] + lam * np.eye(len(support)),  # noqa: E731
                                        a[:, support].T @ b, rcond=None)[0]
        w = refit()
        while support and w.min() < 0:
            support.pop(int(np.argmin(w)))
            w = refit() if support else np.zeros(0)
        residual = b - a[:, support] @ w
    return support, w


@pytest.mark.parametrize("screen_from", [0, None])  # 0: the float32 screen on these small matrices too
@pytest.mark.parametrize("seed, lam", [(0, 0.0), (1, 0.5), (2, 0.0), (3, 2.0)])
def test_one_omp_path_gives_every_budgets_separate_run(seed, lam, screen_from, monkeypatch):
    from valbench.methods import selection
    from valbench.methods.gradmatch import omp_path

    if screen_from is not None:
        monkeypatch.setattr(selection, "SCREEN_MIN_ELEMENTS", screen_from)

    rng = np.random.default_rng(seed)
    a = rng.normal(size=(30, 80))
    b = a @ np.where(rng.random(80) < 0.3, rng.normal(size=80), 0.0)  # signed: negative weights get dropped
    path = omp_path(a, b, [1, 4, 9, 20], lam)
    for k, (support, w) in path.items():
        expected_support, expected_w = plain_omp(a, b, k, lam)
        assert support.tolist() == expected_support
        assert np.allclose(w, expected_w, rtol=1e-7, atol=1e-9)
