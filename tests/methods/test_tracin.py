"""TracIn against independent references: the closed-form gradient of logistic regression, back-propagation
written out by hand on a tiny ReLU network, and the exact influence for the random projection."""

import numpy as np
import pytest
import torch
from torch import nn

from valbench.learners import CNN, MLP, LogisticRegression
from valbench.metrics import mislabel_auc
from valbench.protocol import DataError, Dataset
from valbench.registry import get_method
from valbench.methods.tracin import Checkpoint, tracin_influence, train_with_checkpoints
from tests.conftest import blobs


def noisy_blobs(n_train=60, seed=0):
    data = blobs(n_train=n_train, n_valid=20, dim=3, seed=seed)
    flip = np.random.default_rng(seed).choice(n_train, n_train // 10, replace=False)
    data.y_train[flip] = (data.y_train[flip] + 1) % data.n_classes
    data.noisy_mask[flip] = True
    return data


def softmax_gradients(weight, bias, x, y, n_classes):
    """Closed-form per-sample gradients of softmax regression, (p_i - e_{y_i}) (x) [x_i, 1], flattened per point."""
    logits = x @ weight.T + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    r = p - np.eye(n_classes)[y]
    x1 = np.hstack([x, np.ones((len(x), 1))])
    return np.stack([np.concatenate([np.outer(ri, xi[:-1]).ravel(), ri]) for ri, xi in zip(r, x1)])


@pytest.mark.parametrize("layers", ["last", "all"])
def test_logreg_agrees_with_the_closed_form_gradient(layers):
    data = noisy_blobs()
    learner = LogisticRegression(data.n_features, data.n_classes)
    module, checkpoints = train_with_checkpoints(learner, data.x_train, data.y_train, epochs=3, seed=0)
    to_valid, self_influence = tracin_influence(module, checkpoints, data, layers=layers)
    expect_valid, expect_self = np.zeros(data.n_train), np.zeros(data.n_train)
    for ck in checkpoints:
        w, b = ck.state["weight"].double().numpy(), ck.state["bias"].double().numpy()
        g = softmax_gradients(w, b, data.x_train.astype(np.float64), data.y_train, data.n_classes)
        gv = softmax_gradients(w, b, data.x_valid.astype(np.float64), data.y_valid, data.n_classes).mean(0)
        expect_valid += ck.lr * g @ gv
        expect_self += ck.lr * (g * g).sum(1)
    np.testing.assert_allclose(to_valid, expect_valid, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(self_influence, expect_self, rtol=1e-5, atol=1e-7)
    assert len(checkpoints) == 3 and all(ck.lr == 1e-2 for ck in checkpoints)


def tiny_network():
    """2 inputs -> 2 ReLU units -> 2 classes, with fixed weights, and three points."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0]]))
        net[0].bias.copy_(torch.tensor([0.0, -0.5]))
        net[2].weight.copy_(torch.tensor([[1.0, -2.0], [-1.0, 0.5]]))
        net[2].bias.copy_(torch.tensor([0.1, -0.1]))
    x = np.array([[1.0, 0.5], [-1.0, 1.0], [2.0, -0.5]], dtype=np.float32)
    y = np.array([0, 1, 1])
    return net, x, y


def hand_gradient(net, x, y):
    """Back-propagation of the cross-entropy written out for the tiny network, one point at a time."""
    w1, b1 = net[0].weight.detach().double().numpy(), net[0].bias.detach().double().numpy()
    w2, b2 = net[2].weight.detach().double().numpy(), net[2].bias.detach().double().numpy()
    out = []
    for xi, yi in zip(x.astype(np.float64), y):
        pre = w1 @ xi + b1
        h = np.maximum(pre, 0)
        z = w2 @ h + b2
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        r = p - np.eye(2)[yi]                      # dCE/dz
        dh = w2.T @ r
        dpre = dh * (pre > 0)
        out.append(np.concatenate([np.outer(dpre, xi).ravel(), dpre, np.outer(r, h).ravel(), r]))
    return np.array(out)


def test_tiny_network_matches_a_hand_computation():
    net, x, y = tiny_network()
    data = Dataset(name="tiny", x_train=x, y_train=y, x_valid=x[:2], y_valid=y[:2], x_test=x, y_test=y, n_classes=2)
    checkpoints = [Checkpoint({k: v.clone() for k, v in net.state_dict().items()}, 0.5)]
    g = hand_gradient(net, x, y)
    gv = g[:2].mean(0)
    to_valid, self_influence = tracin_influence(net, checkpoints, data, layers="all")
    np.testing.assert_allclose(to_valid, 0.5 * g @ gv, rtol=1e-6)
    np.testing.assert_allclose(self_influence, 0.5 * (g * g).sum(1), rtol=1e-6)
    last = g[:, 6:]                                 # the last layer's weight (4) and bias (2)
    to_valid, self_influence = tracin_influence(net, checkpoints, data, layers="last")
    np.testing.assert_allclose(to_valid, 0.5 * last @ last[:2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(self_influence, 0.5 * (last * last).sum(1), rtol=1e-6)


def test_random_projection_approximates_the_exact_influence():
    data = noisy_blobs()
    learner = MLP(data.n_features, data.n_classes, hidden=8)
    module, checkpoints = train_with_checkpoints(learner, data.x_train, data.y_train, epochs=2, seed=0)
    exact, exact_self = tracin_influence(module, checkpoints, data, layers="all")
    projected, projected_self = tracin_influence(module, checkpoints, data, layers="all", projection_dim=4000, seed=1)
    again, _ = tracin_influence(module, checkpoints, data, layers="all", projection_dim=4000, seed=1)
    np.testing.assert_array_equal(projected, again)
    assert np.corrcoef(exact, projected)[0, 1] > 0.95
    np.testing.assert_allclose(projected_self, exact_self, rtol=0.15)


def test_self_influence_finds_flipped_labels():
    data = noisy_blobs(n_train=100)
    result = get_method("tracin")(target="self").fit(data, MLP(data.n_features, data.n_classes, hidden=16), 0)
    assert mislabel_auc(result.scores, data.noisy_mask) > 0.85
    assert result.extra["checkpoints"] == 10


def test_cnn_runs_on_the_last_layer_and_on_all_parameters():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 64)).astype(np.float32)
    y = np.arange(40) % 2
    x[y == 1, :32] += 1.5
    data = Dataset(name="img", x_train=x[:24], y_train=y[:24], x_valid=x[24:32], y_valid=y[24:32], x_test=x[32:],
                   y_test=y[32:], n_classes=2, meta={"image_shape": (1, 8, 8)})
    learner = CNN(64, 2, image_shape=(1, 8, 8), epochs=2, batch_size=8, device="cpu")
    last = get_method("tracin")(epochs=2).fit(data, learner, 0)
    full = get_method("tracin")(epochs=2, layers="all", projection_dim=64).fit(data, learner, 0)
    assert np.isfinite(last.scores).all() and np.isfinite(full.scores).all()
    assert last.extra["checkpoints"] == full.extra["checkpoints"] == 2 and np.abs(last.scores).max() > 0


@pytest.mark.parametrize("params", [{"target": "test"}, {"layers": "first"}, {"epochs": 0},
                                    {"projection_dim": -1}, {"projection_dim": 8}])
def test_bad_parameters_are_refused_up_front(params):
    with pytest.raises(DataError, match="tracin"):
        get_method("tracin")(**params).check()
