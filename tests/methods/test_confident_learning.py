import numpy as np
import pytest
from cleanlab.filter import find_label_issues

from tests.conftest import blobs
from valbench.learners import LogisticRegression
from valbench.learners import out_of_fold_probabilities
from valbench.methods.confident_learning import ConfidentLearning, label_quality
from valbench.protocol import DataError


def noisy_blobs(seed=0):
    data = blobs(n_train=150, n_classes=3, seed=seed)
    flipped = np.zeros(data.n_train, bool)
    flipped[::8] = True
    data.y_train[flipped] = (data.y_train[flipped] + 1) % 3
    data.noisy_mask = flipped
    return data


def test_scores_are_the_closed_forms_on_out_of_fold_probabilities():
    data = noisy_blobs()
    learner = LogisticRegression(data.n_features, data.n_classes)
    probs = out_of_fold_probabilities(learner, data.x_train, data.y_train, 3, 5, seed=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    y = data.y_train
    own = probs[np.arange(len(y)), y]
    np.testing.assert_allclose(label_quality(y, probs, "self_confidence"), own, rtol=1e-6)
    other = probs.copy()
    other[np.arange(len(y)), y] = -np.inf
    np.testing.assert_allclose(label_quality(y, probs, "normalized_margin"), (own - other.max(axis=1) + 1) / 2,
                               rtol=1e-6)
    # out of fold: each fold's probabilities come from the model fitted on the other four folds only
    from sklearn.model_selection import StratifiedKFold
    train, held = next(StratifiedKFold(5, shuffle=True, random_state=0).split(data.x_train, y))
    again = LogisticRegression(data.n_features, data.n_classes).fit(data.x_train[train], y[train])
    np.testing.assert_allclose(probs[held], again.predict_proba(data.x_train[held]), atol=1e-6)


@pytest.mark.parametrize("method", ["self_confidence", "normalized_margin"])
def test_order_agrees_with_cleanlabs_find_label_issues(method):
    data = noisy_blobs(seed=1)
    learner = LogisticRegression(data.n_features, data.n_classes)
    val = ConfidentLearning(method=method).fit(data, learner, seed=3)
    probs = out_of_fold_probabilities(LogisticRegression(data.n_features, data.n_classes), data.x_train,
                                      data.y_train, 3, 5, seed=3)
    issues = find_label_issues(data.y_train, probs, return_indices_ranked_by=method)
    assert len(issues) > 0
    # cleanlab ranks its issues by the same score, least clean first
    assert np.all(np.diff(val.scores[issues]) >= -1e-9)
    # and the issues it finds are the flipped labels, whose scores are the lowest
    assert data.noisy_mask[issues].mean() > 0.7
    assert val.scores[data.noisy_mask].mean() < val.scores[~data.noisy_mask].mean()
    assert val.utility_evals == 5 and learner.fits == 5


def test_checks_name_the_valid_values():
    with pytest.raises(DataError, match="normalized_margin"):
        ConfidentLearning(method="nope").check()
    with pytest.raises(DataError, match="folds"):
        ConfidentLearning(folds=1).check()
