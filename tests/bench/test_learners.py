import numpy as np
import pytest
import torch
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


def _separable(n_per_class=30, d=5, c=3, seed=0):
    """``c`` classes around centres 10 units apart (one per axis), unit noise: every learner separates them."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(c), n_per_class)
    return (10 * np.eye(c, d)[y] + rng.normal(size=(len(y), d))).astype(np.float32), y


@pytest.mark.parametrize("kind", [LogisticRegression, MLP])
def test_every_class_is_predicted_on_separable_data(kind):
    x, y = _separable()
    model = kind(5, 3).fit(x, y)
    assert model.predict_proba(x).shape == (90, 3)
    assert np.array_equal(model.predict(x), y)  # every class predicted, each where it belongs


@pytest.mark.parametrize("kind", [LogisticRegression, MLP])
def test_subset_missing_a_class_keeps_every_class_in_its_own_column(kind):
    """Fitted without class 1, the model still answers over all 3 classes, with labels not renumbered: class 2's
    points are predicted 2 (not 1, as a learner that compacted the labels present would say), never 1."""
    x, y = _separable()
    model = kind(5, 3).fit(x[y != 1], y[y != 1])
    proba = model.predict_proba(x)
    assert proba.shape == (90, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert np.array_equal(model.predict(x[y != 1]), y[y != 1])
    assert 1 not in model.predict(x)


def test_bad_learner_arguments():
    with pytest.raises(ValueError, match="unknown learner 'svm'; valid: \\['cnn', 'logreg', 'mlp'\\]"):
        make_learner("svm", 3, 2)
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        LogisticRegression(3, 1)


def _bars(n=300, size=8, seed=0):
    """A tiny image problem: a vertical (class 0) or horizontal (class 1) bar at a random place, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(scale=0.3, size=(n, 1, size, size))
    where = rng.integers(0, size, size=n)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, :, where[i]] += 2.0
        else:
            x[i, 0, where[i], :] += 2.0
    return x.reshape(n, -1).astype(np.float32), y


CNN_FAST = dict(image_shape=(1, 8, 8), width=8, epochs=8, batch_size=32, lr=3e-3, min_steps=0, device="cpu")


def test_cnn_learns_a_tiny_image_problem():
    x, y = _bars(n=400)
    model = make_learner("cnn", 64, 2, seed=0, **CNN_FAST).fit(x[:300], y[:300])
    assert model.accuracy(x[300:], y[300:]) > 0.95
    assert model.predict_proba(x).shape == (400, 2)


def test_cnn_is_deterministic_for_a_seed():
    x, y = _bars(n=200)
    a = make_learner("cnn", 64, 2, seed=3, **CNN_FAST).fit(x, y)
    learner = make_learner("cnn", 64, 2, seed=3, **CNN_FAST)
    b = learner.fit(x, y)
    c = make_learner("cnn", 64, 2, seed=4, **CNN_FAST).fit(x, y)
    assert np.array_equal(a.predict_proba(x), b.predict_proba(x))
    assert not np.array_equal(a.predict_proba(x), c.predict_proba(x))
    assert learner.fits == 1


def test_cnn_zero_weight_equals_dropping_the_point():
    x, y = _bars(n=200)
    learner = make_learner("cnn", 64, 2, seed=0, **CNN_FAST)
    w = np.ones(200)
    w[[0, 7, 99]] = 0.0
    weighted = learner.fit(x, y, weight=w)
    dropped = learner.fit(x[w > 0], y[w > 0])
    assert np.array_equal(weighted.predict_proba(x), dropped.predict_proba(x))
    changed = learner.fit(x, y, weight=np.where(y == 0, 5.0, 1.0))  # weights do change the fit
    assert not np.allclose(changed.predict_proba(x), dropped.predict_proba(x))


def test_cnn_warm_start_batched_prediction_and_last_layer():
    from valbench.methods.selection import last_layer_gradients

    x, y = _bars(n=100)
    learner = make_learner("cnn", 64, 2, seed=0, **{**CNN_FAST, "epochs": 1})
    model = learner.fit(x, y)
    warm = learner.fit(x, y, init=model.state)  # one more epoch from the first fit
    assert not np.array_equal(warm.predict_proba(x), model.predict_proba(x))
    model.batch_size = 7  # chunked forward passes give the same outputs
    whole = make_learner("cnn", 64, 2, seed=0, **{**CNN_FAST, "epochs": 1}).fit(x, y)
    whole.batch_size = None
    assert np.allclose(model.predict_proba(x), whole.predict_proba(x), atol=1e-6)
    assert last_layer_gradients(model, x, y).shape == (100, 2 * (1 + 8 * 2 * 2))  # width 8 x 2 x 2 after two pools
    assert learner.describe()["image_shape"] == [1, 8, 8]


def test_cnn_is_the_condensation_convnet():
    """conv 3x3 - instance norm - ReLU - 2x2 average pool, three times, then one linear layer on the flattened
    width x 3 x 3 features of a 28x28 image (Zhao et al. 2021's ConvNet at width 32)."""
    from torch import nn

    module = make_learner("cnn", 784, 10, image_shape=(1, 28, 28)).build()
    kinds = [type(m) for m in module]
    assert kinds[1:5] == [nn.Conv2d, nn.GroupNorm, nn.ReLU, nn.AvgPool2d] and kinds.count(nn.Conv2d) == 3
    norm = module[2]
    assert norm.num_groups == norm.num_channels == 32  # one group per channel: instance normalisation
    assert isinstance(module[-1], nn.Linear) and module[-1].in_features == 32 * 3 * 3
    assert module[:-1](torch.zeros(5, 784)).shape == (5, 288)  # the penultimate embedding


def test_random_shift_translates_in_training_only():
    from valbench.learners import RandomShift

    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    shift = RandomShift(2, seed=0)
    out = shift(x)
    for i in range(2):  # each image is a zero-filled translation of itself by at most 2 pixels
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
                matches.append(torch.equal(out[i], padded[:, 2 + dy:8 + dy, 2 + dx:8 + dx]))
        assert sum(matches) == 1
    assert not torch.equal(out, x) or not torch.equal(RandomShift(2, seed=1)(x), x)
    assert torch.equal(shift.eval()(x), x)
    assert torch.equal(RandomShift(2, seed=5)(x), RandomShift(2, seed=5)(x))


def test_cnn_with_augmentation_learns_and_is_deterministic():
    x, y = _bars(n=300)
    params = {**CNN_FAST, "augment": 1}
    a = make_learner("cnn", 64, 2, seed=1, **params).fit(x[:200], y[:200])
    b = make_learner("cnn", 64, 2, seed=1, **params).fit(x[:200], y[:200])
    assert np.array_equal(a.predict_proba(x), b.predict_proba(x))
    assert a.accuracy(x[200:], y[200:]) > 0.9


def test_cnn_shape_errors_and_image_datasets():
    from valbench.learners import learner_for
    from valbench.registry import get_dataset, image_datasets

    with pytest.raises(ValueError, match="needs an image dataset"):
        make_learner("cnn", 64, 2)
    with pytest.raises(ValueError, match="does not hold the dataset's 65 features"):
        make_learner("cnn", 65, 2, image_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="too small for 3 2x2 pools"):
        make_learner("cnn", 49, 2, image_shape=(1, 7, 7), depth=3)
    assert make_learner("cnn", 49, 2, image_shape=(1, 7, 7), depth=2).depth == 2
    assert [make_learner("cnn", s * s, 2, image_shape=(1, s, s)).depth for s in (28, 32, 8, 4)] == [3, 3, 2, 1]
    with pytest.raises(ValueError, match="too small for a 2x2 pool"):
        make_learner("cnn", 9, 2, image_shape=(1, 3, 3))
    for bad in ({"width": 0}, {"depth": 1.5}, {"augment": -1}, {"schedule": "step"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_learner("cnn", 64, 2, image_shape=(1, 8, 8), **bad)
    assert {"digits", "mnist"} <= set(image_datasets()) and "wine" not in image_datasets()
    digits = get_dataset("digits")(seed=0, n_train=100)
    assert learner_for("cnn", digits).image_shape == (1, 8, 8)
    assert learner_for("logreg", digits).name == "logreg"  # the shape is ignored by the others
