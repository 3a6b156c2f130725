import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from valbench.learners import LogisticRegression
from valbench.metrics import (IMBALANCE_SHARE, budget_sizes, check_budget_fractions, class_balance, detection_curve,
                           judged_metric, mislabel_auc, rank_by_value, select_subset, subset_value,
                           test_performance as refit_scores)
from valbench.protocol import DataError, Valuation
from tests.conftest import require_peer


@pytest.mark.parametrize("seed", range(20))
def test_mislabel_auc_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    noisy = rng.random(n) < rng.uniform(0.05, 0.6)
    noisy[:2] = [True, False]
    scores = rng.integers(0, 5, size=n).astype(float) if seed % 2 else rng.normal(size=n)  # with and without ties
    assert mislabel_auc(scores, noisy) == pytest.approx(roc_auc_score(noisy, -scores), abs=1e-12)


def test_mislabel_auc_is_none_without_noise():
    assert mislabel_auc(np.arange(5.0), np.zeros(5, bool)) is None


def test_detection_curve_finds_lowest_values_first():
    scores = np.array([5, 4, 3, 2, 1, 0.0])
    noisy = np.array([0, 0, 0, 0, 1, 1], bool)
    curve = detection_curve(scores, noisy, grid=np.array([0, 1 / 3, 0.5, 1]))
    assert curve == {"inspected": [0, 1 / 3, 0.5, 1], "found": [0.0, 1.0, 1.0, 1.0]}


def test_budget_sizes_and_errors():
    assert budget_sizes([0.05, 0.5, 1.0, 7], 100, "d") == [5, 50, 100, 7]
    for bad in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(DataError, match="fractions of the train split in \\(0, 1\\]"):
            check_budget_fractions([bad])
    with pytest.raises(DataError, match="dataset 'd': budget 101 points exceeds its 100 train points"):
        budget_sizes([101], 100, "d")


def test_ranking_breaks_ties_randomly_but_reproducibly():
    scores = np.zeros(50)
    assert not np.array_equal(rank_by_value(scores, 0), np.arange(50))
    assert np.array_equal(rank_by_value(scores, 0), rank_by_value(scores, 0))
    assert rank_by_value(np.array([1.0, 3.0, 2.0]))[0] == 1


def test_subset_value_uses_the_methods_own_subset(small_data):
    own = Valuation(scores=np.arange(small_data.n_train, dtype=float), subsets={6: np.arange(6)})
    assert select_subset(own, 6).tolist() == list(range(6))
    assert set(select_subset(own, 3)) == {small_data.n_train - 1, small_data.n_train - 2, small_data.n_train - 3}
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    rows = subset_value(small_data, learner, own, [0.1, 1.0])
    assert [r["k"] for r in rows] == [6, 60]
    assert rows[1]["accuracy"] == pytest.approx(learner.fit(small_data.x_train, small_data.y_train)
                                                .accuracy(small_data.x_test, small_data.y_test))


def test_balanced_accuracy_is_the_mean_per_class_recall_of_the_same_refit(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    subset = np.arange(0, small_data.n_train, 3)
    scores = refit_scores(small_data, learner, subset)
    predicted = learner.fit(small_data.x_train[subset], small_data.y_train[subset]).predict(small_data.x_test)
    recalls = [np.mean(predicted[small_data.y_test == c] == c) for c in np.unique(small_data.y_test)]
    assert scores["balanced_accuracy"] == pytest.approx(np.mean(recalls), abs=1e-12)
    assert scores["accuracy"] == pytest.approx(np.mean(predicted == small_data.y_test), abs=1e-12)
    rows = subset_value(small_data, learner, Valuation(scores=np.arange(small_data.n_train, dtype=float)), [0.2])
    assert 0 <= rows[0]["balanced_accuracy"] <= 1


def test_class_balance_gives_the_constant_predictors_scores(small_data):
    from valbench.datasets.noise import inject_noise

    noisy = inject_noise(small_data, 0.3, seed=0)
    balance = class_balance(noisy)
    clean = np.bincount(small_data.y_train, minlength=small_data.n_classes)
    assert balance["train_class_shares"] == pytest.approx(clean / clean.sum())  # the dataset's, not the noise's
    majority = np.argmax(np.bincount(noisy.y_train, minlength=small_data.n_classes))  # what a learner is given
    assert balance["constant_accuracy"] == pytest.approx(np.mean(small_data.y_test == majority))
    assert balance["constant_balanced_accuracy"] == pytest.approx(1 / small_data.n_classes)


def test_judged_metric_switches_to_balanced_accuracy_past_the_imbalance_share():
    assert judged_metric([0.94, 0.06]) == "balanced_accuracy"  # caravan
    assert judged_metric([0.61, 0.39]) == "accuracy"  # spam
    assert judged_metric([IMBALANCE_SHARE, 1 - IMBALANCE_SHARE]) == "accuracy"  # the share itself is not past it
    assert judged_metric([0.1] * 10) == "accuracy"


def _odv_noisy_detection():
    """OpenDataVal 1.3.0's ``noisy_detection`` behind the suite's import shim (require_peer: skip or fail)."""
    require_peer("opendataval")
    import valbench.methods.opendataval  # noqa: F401 - the shim that makes opendataval importable
    from opendataval.experiment.exper_methods import noisy_detection

    return noisy_detection


@pytest.mark.parametrize("seed", range(12))
def test_kmeans_f1_equals_opendataval_noisy_detection(seed):
    from types import SimpleNamespace

    from valbench.metrics import kmeans_f1

    noisy_detection = _odv_noisy_detection()
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 300))
    noisy = rng.random(n) < rng.uniform(0.05, 0.4)
    noisy[0] = True
    # separable, overlapping, and tied values
    scores = [rng.normal(size=n) - 2.0 * noisy, rng.normal(size=n), rng.integers(0, 4, size=n).astype(float)][seed % 3]
    expected = noisy_detection(SimpleNamespace(data_values=scores), indices=np.flatnonzero(noisy).tolist())
    assert kmeans_f1(scores, noisy) == pytest.approx(expected["kmeans_f1"], abs=1e-12)


def test_kmeans_f1_known_answer_and_no_noise():
    from valbench.metrics import kmeans_f1, two_means_split

    values = np.array([0.0, 0.1, 0.2, 5.0, 5.1, 5.2, 5.3])
    assert sorted(two_means_split(values)) == [0, 1, 2]
    noisy = np.array([1, 1, 0, 0, 0, 0, 1], bool)  # TP 2, FP 1, FN 1 -> F1 = 4 / 6
    assert kmeans_f1(values, noisy) == pytest.approx(4 / 6)
    assert kmeans_f1(values, np.zeros(7, bool)) is None


def test_removal_curve_retrains_without_the_top_valued_points(small_data):
    from valbench.metrics import removal_curve, test_performance

    data = small_data
    learner = LogisticRegression(data.n_features, data.n_classes, seed=0)
    scores = np.arange(data.n_train, dtype=float)  # point n-1 is the most valuable
    curve = removal_curve(data, learner, scores, fractions=(0.1, 0.5))
    assert curve["removed"] == [0.1, 0.5]
    keep = data.n_train - round(0.5 * data.n_train)
    assert curve["accuracy"][1] == test_performance(data, learner, np.arange(keep))["accuracy"]
def test_subset_value_retrains_with_the_methods_weights(small_data, tmp_path):
    from valbench.cache import FitCache
    from valbench.protocol import MethodError

    idx = np.array([7, 3, 12, 40, 1, 25, 33, 50, 9, 18])
    weights = np.arange(1.0, 11.0)
    plain = Valuation(scores=np.zeros(small_data.n_train), subsets={10: idx})
    weighted = Valuation(scores=np.zeros(small_data.n_train), subsets={10: idx}, weights={10: weights})
    weighted.validate("m", small_data.n_train, [10])
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    order = np.argsort(idx)  # the harness fits points in index order, each with its own weight
    expected = learner.fit(small_data.x_train[idx[order]], small_data.y_train[idx[order]], weight=weights[order])
    cache = FitCache(tmp_path)
    row_w = subset_value(small_data, learner, weighted, [10], cache=cache)[0]
    row_p = subset_value(small_data, learner, plain, [10], cache=cache)[0]
    assert row_w["weighted"] and not row_p["weighted"]
    assert row_w["loss"] == pytest.approx(expected.loss(small_data.x_test, small_data.y_test), rel=1e-9)
    assert row_w["loss"] != pytest.approx(row_p["loss"], rel=1e-6)  # the weights reach the cache key too
    assert cache.counts() == {"hits": 0, "misses": 2}
    for bad in ({10: -weights}, {10: weights[:5]}, {5: weights[:5]}):
        with pytest.raises(MethodError, match="weights for budget"):
            Valuation(scores=np.zeros(small_data.n_train), subsets={10: idx}, weights=bad).validate(
                "m", small_data.n_train, [10])
