import numpy as np
import pytest
import torch

from valbench.learners import LogisticRegression, make_learner
from valbench.methods.glister import Glister, glister_greedy, glister_order
from valbench.methods import selection
from valbench.methods.selection import last_layer_gradients

from tests.conftest import blobs


def validation_loss(theta, x, y, n_classes):
    """Mean validation cross-entropy of the linear model with parameters theta = [b, W.flatten()]."""
    bias, weight = theta[:n_classes], theta[n_classes:].reshape(n_classes, -1)
    return torch.nn.functional.cross_entropy(torch.as_tensor(x, dtype=torch.float64) @ weight.T + bias,
                                             torch.as_tensor(y))


def test_greedy_gains_match_an_explicit_autograd_recomputation(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    model = learner.fit(small_data.x_train, small_data.y_train)
    eta, c = 0.05, small_data.n_classes
    order, gains = glister_order(model, small_data, eta, 6)
    theta0 = torch.cat([model.module.bias, model.module.weight.flatten()]).double().detach()

    def train_grad(i):  # grad of point i's loss at theta0, by autograd
        t = theta0.clone().requires_grad_(True)
        validation_loss(t, small_data.x_train[i:i + 1], small_data.y_train[i:i + 1], c).backward()
        return t.grad

    train = torch.stack([train_grad(i) for i in range(small_data.n_train)])
    theta, chosen = theta0.clone(), []
    for step in range(6):
        t = theta.clone().requires_grad_(True)
        validation_loss(t, small_data.x_valid, small_data.y_valid, c).backward()
        explicit = eta * train @ t.grad
        explicit[chosen] = -torch.inf
        assert order[step] == int(torch.argmax(explicit))
        assert gains[step] == pytest.approx(float(explicit.max()), rel=1e-6, abs=1e-9)
        chosen.append(order[step])
        theta = theta - eta * train[order[step]]


def test_the_taylor_gain_predicts_the_change_of_validation_loss_for_small_steps(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    model = learner.fit(small_data.x_train, small_data.y_train)
    eta, c = 1e-4, small_data.n_classes
    order, gains = glister_order(model, small_data, eta, 1)
    theta0 = torch.cat([model.module.bias, model.module.weight.flatten()]).double().detach()
    t = theta0.clone().requires_grad_(True)
    validation_loss(t, small_data.x_train[order[:1]], small_data.y_train[order[:1]], c).backward()
    before = validation_loss(theta0, small_data.x_valid, small_data.y_valid, c)
    after = validation_loss(theta0 - eta * t.grad, small_data.x_valid, small_data.y_valid, c)
    assert float(before - after) == pytest.approx(gains[0], rel=1e-2)


def test_method_is_a_nested_greedy_order(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    v = Glister().fit(small_data, learner, 0, [3, 9]).validate("glister", 60, [3, 9])
    assert set(v.subsets[3]) <= set(v.subsets[9]) and np.count_nonzero(v.scores) == 60
    with pytest.raises(ValueError, match="eta"):
        Glister(eta=0).fit(small_data, learner, 0, [3])


def test_the_greedy_stops_at_the_largest_budget_and_ranks_the_rest_by_their_next_gain(small_data):
    from valbench.methods.glister import glister_greedy

    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    model = learner.fit(small_data.x_train, small_data.y_train)
    full, _ = glister_order(model, small_data, 0.01, small_data.n_train)
    picked, _, next_gain = glister_greedy(model, small_data, 0.01, 9)
    assert picked.tolist() == full[:9].tolist()
    assert int(np.argmax(np.where(np.isin(np.arange(60), picked), -np.inf, next_gain))) == full[9]
    v = Glister().fit(small_data, learner, 0, [3, 9])
    assert v.subsets[9].tolist() == sorted(full[:9])
    rest = np.argsort(-v.scores)[9:]
    assert np.all(np.diff(next_gain[rest]) <= 0)


@pytest.mark.parametrize("screen_from", [0, None])  # 0: screen this small problem too; None: the default (not)
@pytest.mark.parametrize("learner_name", ["logreg", "mlp"])
def test_the_float32_screened_greedy_picks_what_a_dense_float64_greedy_picks(learner_name, screen_from, monkeypatch):
    """Every pick of a long greedy against the explicit n x C (1 + h) gradient matrix in float64, the validation
    gradient by autograd: the float32 screen changes the cost, never the order."""
    if screen_from is not None:
        monkeypatch.setattr(selection, "SCREEN_MIN_ELEMENTS", screen_from)
    data = blobs(n_train=300, n_valid=60, n_classes=4, dim=40, seed=3)
    model = make_learner(learner_name, data.n_features, data.n_classes, seed=0).fit(data.x_train, data.y_train)
    eta, steps, c = 0.05, 150, data.n_classes
    picked, gains, next_gain = glister_greedy(model, data, eta, steps)
    module = model.module
    last = module if isinstance(module, torch.nn.Linear) else module[-1]
    with torch.no_grad():
        def hidden(x):
            xt = torch.as_tensor(x)
            return (xt if last is module else module[:-1](xt)).double()

        h_train, h_valid = hidden(data.x_train), hidden(data.x_valid)
        theta = torch.cat([last.bias, last.weight.flatten()]).double()
    r = torch.as_tensor(last_layer_gradients(model, data.x_train, data.y_train, with_input=False))
    train = torch.cat([r, (r[:, :, None] * h_train[:, None, :]).flatten(1)], dim=1)
    chosen = []
    for step in range(steps + 1):
        t = theta.clone().requires_grad_(True)
        logits = h_valid @ t[c:].reshape(c, -1).T + t[:c]
        torch.nn.functional.cross_entropy(logits, torch.as_tensor(data.y_valid)).backward()
        dense = eta * train @ t.grad
        if step == steps:
            assert np.allclose(next_gain, dense.numpy(), rtol=1e-9, atol=1e-15)
            break
        dense[chosen] = -torch.inf
        assert picked[step] == int(torch.argmax(dense)), step
        assert gains[step] == pytest.approx(float(dense.max()), rel=1e-9)
        chosen.append(int(picked[step]))
        theta = theta - eta * train[picked[step]]
