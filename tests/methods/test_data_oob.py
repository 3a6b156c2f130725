"""Native Data-OOB: the batched fit equals a loop over the same bootstrap draws, and the peers' Data-OOB.

References: (1) the same solver run one model at a time; (2) a plain loop of the suite's learner, converged,
with the bootstrap counts as sample weights; (3) OpenDataVal's DataOob, which draws the same samples for the
same seed; (4) pyDVL's DataOOBValuation, fed the same bagging ensemble's samples.
"""

import numpy as np
import pytest
import torch

from valbench.learners import MLP, LogisticRegression
from valbench.metrics import mislabel_auc
from valbench.protocol import DataError
from valbench.registry import METHODS, UNAVAILABLE, get_method
from valbench.methods.data_oob import (STALL_SLACK, bagged_logreg_correct, bootstrap_counts, class_preconditioner,
                                       fit_bagged_logreg, looped_correct, out_of_bag_values)
from tests.conftest import blobs


def noisy_blobs(n_train=80, seed=0):
    data = blobs(n_train=n_train, n_valid=30, dim=3, seed=seed)
    flip = np.random.default_rng(seed).choice(n_train, n_train // 8, replace=False)
    data.y_train[flip] = (data.y_train[flip] + 1) % data.n_classes
    data.noisy_mask[flip] = True
    return data


def test_counts_are_bootstrap_samples():
    counts = bootstrap_counts(50, 7, 0.6, seed=3)
    assert counts.shape == (7, 50) and (counts.sum(1) == 30).all()
    draws = np.random.RandomState(3).randint(0, 50, size=(7, 30))
    assert all((np.bincount(row, minlength=50) == c).all() for row, c in zip(draws, counts))


def test_out_of_bag_values_by_hand():
    counts = np.array([[1, 0, 2], [0, 0, 3], [1, 1, 1]])
    correct = np.array([[True, True, False], [False, True, True], [True, False, True]])
    values, stderr = out_of_bag_values(correct, counts)
    # point 0: out of bag for model 1 only (wrong); point 1: models 0, 1 (both right); point 2: never -> mean
    assert values.tolist() == [0.0, 1.0, 0.5]
    assert stderr[1] == 0.0


def test_batched_fit_equals_one_model_at_a_time():
    data = noisy_blobs()
    counts = bootstrap_counts(data.n_train, 12, 1.0, seed=1)
    batched, _ = fit_bagged_logreg(data.x_train, data.y_train, counts, data.n_classes, 1e-3, tol=1e-6,
                                   dtype=torch.float64)
    single = torch.cat([fit_bagged_logreg(data.x_train, data.y_train, counts[b:b + 1], data.n_classes, 1e-3,
                                          tol=1e-6, dtype=torch.float64)[0] for b in range(len(counts))])
    torch.testing.assert_close(batched, single, atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype, bound", [(torch.float64, 1e-6), (torch.float32, STALL_SLACK * 5e-7 * 1.2)])
def test_batched_fit_is_the_learners_optimum(dtype, bound):
    """Each model's gradient of the learner's weighted objective vanishes (checked by autograd in float64).

    In float32 these models stop changing their loss (beyond rounding) at gradients of 3e-4 to 1e-3; they must
    continue in float64 rather than stop there, to within STALL_SLACK x tol (1.2: the float32 rounding of the
    returned parameters).
    """
    data = noisy_blobs()
    counts = bootstrap_counts(data.n_train, 20, 1.0, seed=2)
    theta, _ = fit_bagged_logreg(data.x_train, data.y_train, counts, data.n_classes, 1e-3, tol=5e-7, dtype=dtype)
    assert theta.dtype == dtype
    x = torch.as_tensor(data.x_train, dtype=torch.float64)
    for b in range(len(counts)):
        t = theta[b].double().requires_grad_(True)
        w = torch.as_tensor(counts[b], dtype=torch.float64)
        ce = torch.nn.functional.cross_entropy(x @ t[:, :-1].T + t[:, -1], torch.as_tensor(data.y_train),
                                               reduction="none")
        loss = (ce * w).sum() / w.sum() + 0.5e-3 * (t[:, :-1] ** 2).sum()
        (grad,) = torch.autograd.grad(loss, t)
        assert grad.abs().max() < bound


@pytest.mark.parametrize("at_zero", [True, False])
def test_preconditioner_inverts_the_hessians_class_blocks(at_zero):
    """Each block is the inverse of the autograd Hessian's diagonal block of its class (plus the 1e-6 jitter)."""
    data = noisy_blobs(n_train=40)
    x1 = torch.cat([torch.as_tensor(data.x_train, dtype=torch.float64), torch.ones(40, 1, dtype=torch.float64)], 1)
    c, d1, l2 = data.n_classes, x1.shape[1], 1e-3
    model = torch.zeros(c, d1, dtype=torch.float64) if at_zero else torch.randn(c, d1, generator=torch.Generator()
                                                                                 .manual_seed(0), dtype=torch.float64)

    def loss(flat):
        t = flat.reshape(c, d1)
        ce = torch.nn.functional.cross_entropy(x1 @ t.T, torch.as_tensor(data.y_train))
        return ce + 0.5 * l2 * (t[:, :-1] ** 2).sum()

    hessian = torch.autograd.functional.hessian(loss, model.reshape(-1)).reshape(c, d1, c, d1)
    precond = class_preconditioner(x1, c, l2, None if at_zero else model)
    assert len(precond) == (1 if at_zero else c)
    for k in range(c):
        block = hessian[k, :, k, :] + 1e-6 * torch.eye(d1, dtype=torch.float64)
        torch.testing.assert_close(precond[min(k, len(precond) - 1)], torch.linalg.inv(block), rtol=1e-4, atol=1e-6)


def test_values_equal_a_loop_of_the_learner():
    data = noisy_blobs()
    counts = bootstrap_counts(data.n_train, 30, 1.0, seed=0)
    converged = LogisticRegression(data.n_features, data.n_classes, max_iter=1000, tol=1e-9)
    loop, _ = out_of_bag_values(looped_correct(data, converged, counts), counts)
    native = get_method("data-oob")(num_models=30).fit(data, LogisticRegression(data.n_features, data.n_classes), 0)
    np.testing.assert_array_equal(native.scores, loop)
    assert native.extra["solver"] == "batched" and native.utility_evals == 30


def test_detects_flipped_labels():
    data = noisy_blobs(n_train=120)
    values = get_method("data-oob")(num_models=50).fit(data, LogisticRegression(data.n_features, data.n_classes), 0)
    assert mislabel_auc(values.scores, data.noisy_mask) > 0.9


def test_other_learners_train_in_a_loop():
    data = noisy_blobs()
    learner = MLP(data.n_features, data.n_classes, hidden=8, max_iter=30)
    result = get_method("data-oob")(num_models=6).fit(data, learner, 0)
    assert result.extra["solver"] == "loop" and learner.fits == 6
    assert ((result.scores >= 0) & (result.scores <= 1)).all()


def test_a_looped_model_trains_on_the_points_it_drew_with_their_counts():
    """Each fit sees the drawn rows only, weighted by their counts: the weighted loss of the bootstrap sample."""
    data = noisy_blobs()
    learner = MLP(data.n_features, data.n_classes, hidden=8, max_iter=30)
    seen = []
    fit = learner.fit

    def recording_fit(x, y, weight=None, **kwargs):
        seen.append((np.asarray(x).copy(), np.asarray(y).copy(), np.asarray(weight).copy()))
        return fit(x, y, weight=weight, **kwargs)

    learner.fit = recording_fit
    counts = bootstrap_counts(data.n_train, 3, 0.5, seed=7)
    correct = looped_correct(data, learner, counts)
    assert correct.shape == (3, data.n_train)
    for (x, y, weight), c in zip(seen, counts):
        drawn = np.flatnonzero(c)
        assert len(drawn) < data.n_train
        np.testing.assert_array_equal(x, data.x_train[drawn])
        np.testing.assert_array_equal(y, data.y_train[drawn])
        np.testing.assert_array_equal(weight, c[drawn])


@pytest.mark.parametrize("params", [{"num_models": 0}, {"num_models": 2.5}, {"max_samples": 0.0},
                                    {"max_samples": 1.5}, {"tol": 0.0}, {"max_iter": 0}])
def test_bad_parameters_are_refused_up_front(params):
    with pytest.raises(DataError, match="data-oob"):
        get_method("data-oob")(**params).check()


@pytest.mark.skipif("odv-DataOob" not in METHODS, reason=UNAVAILABLE.get("opendataval", "opendataval missing"))
def test_equals_opendataval_on_the_same_draws():
    data = noisy_blobs()
    learner = LogisticRegression(data.n_features, data.n_classes, max_iter=1000, tol=1e-9)
    odv = get_method("odv-DataOob")(num_models=25).fit(data, learner, 4)
    native = get_method("data-oob")(num_models=25).fit(data, learner, 4)
    np.testing.assert_allclose(native.scores, odv.scores, rtol=0, atol=1e-6)  # OpenDataVal averages in float32


@pytest.mark.skipif("pydvl-data-oob" not in METHODS, reason=UNAVAILABLE.get("pydvl", "pydvl missing"))
def test_equals_pydvl_on_the_same_ensemble():
    from sklearn.ensemble import BaggingClassifier

    from valbench.methods.pydvl import SuiteClassifier, pv, quiet_sequential

    data = noisy_blobs()
    learner = LogisticRegression(data.n_features, data.n_classes, max_iter=1000, tol=1e-9)
    bagging = BaggingClassifier(SuiteClassifier(learner), n_estimators=20, random_state=5)
    with quiet_sequential():
        bagging.fit(data.x_train, data.y_train)
        valuation = pv.DataOOBValuation(bagging).fit(pv.Dataset(data.x_train, data.y_train))
    theirs = np.zeros(data.n_train)
    theirs[valuation.result.indices] = valuation.result.values
    counts = np.stack([np.bincount(s, minlength=data.n_train) for s in bagging.estimators_samples_])
    correct, _ = bagged_logreg_correct(data, learner, counts, tol=1e-6, max_iter=500)
    ours, _ = out_of_bag_values(correct, counts)
    never = (counts > 0).all(0)  # pyDVL leaves a point that is never out of bag at 0
    np.testing.assert_array_equal(ours[~never], theirs[~never])
