import itertools

import numpy as np
import torch

from valbench.learners import LogisticRegression
from valbench.methods.craig import Craig
from valbench.methods.selection import class_budgets, last_layer_gradients
from tests.methods.test_facility_location import assert_is_a_greedy_order


def test_last_layer_gradients_equal_autograd(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    model = learner.fit(small_data.x_train, small_data.y_train)
    got = last_layer_gradients(model, small_data.x_train[:5], small_data.y_train[:5])
    for i in range(5):
        model.module.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.module(torch.as_tensor(small_data.x_train[i:i + 1])),
                                                 torch.as_tensor(small_data.y_train[i:i + 1]))
        loss.backward()
        expected = torch.cat([model.module.bias.grad, model.module.weight.grad.flatten()]).double().numpy()
        assert np.allclose(got[i], expected, atol=1e-6)


def brute_force_medoids(g, k):
    """The k points maximising sum_i max_{j in S} (d0 - ||g_i - g_j||), by enumeration."""
    d = np.linalg.norm(g[:, None] - g[None], axis=2)
    sim = d.max() - d + 1e-3
    return max(itertools.combinations(range(len(g)), k), key=lambda s: sim[:, list(s)].max(axis=1).sum()), sim


def test_weights_sum_to_class_sizes_and_medoids_agree_with_enumeration():
    from tests.conftest import blobs

    data = blobs(n_train=24, n_classes=2, dim=2, seed=4)
    learner = LogisticRegression(data.n_features, data.n_classes)
    budgets = [2, 4, 6]
    v = Craig().fit(data, learner, 0, budgets).validate("craig", data.n_train, budgets)
    grads = last_layer_gradients(learner.fit(data.x_train, data.y_train), data.x_train, data.y_train)
    for k in budgets:
        idx, w = v.subsets[k], v.weights[k]
        for c, k_c in class_budgets(data.y_train, k).items():
            assert w[data.y_train[idx] == c].sum() == (data.y_train == c).sum()
            members = np.flatnonzero(data.y_train == c)
            chosen = idx[data.y_train[idx] == c]
            best, sim = brute_force_medoids(grads[members], k_c)
            value = lambda s: sim[:, s].max(axis=1).sum()  # noqa: E731
            assert value(np.searchsorted(members, chosen)) >= (1 - 1 / np.e) * value(list(best))
            if k_c == 1:  # greedy's first pick is the exact 1-medoid
                assert chosen.tolist() == members[list(best)].tolist()
            if k == budgets[-1]:  # the class's picks, best score first, are a (native) greedy order
                assert_is_a_greedy_order(sim, np.searchsorted(members, chosen[np.argsort(-v.scores[chosen])]))
    unweighted = Craig(weighted=False).fit(data, learner, 0, budgets)
    assert unweighted.weights is None and all(np.array_equal(unweighted.subsets[k], v.subsets[k]) for k in budgets)


def test_last_layer_gradients_filled_in_chunks_equal_one_pass(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    model = learner.fit(small_data.x_train, small_data.y_train)
    for with_input in (True, False):
        whole = last_layer_gradients(model, small_data.x_train, small_data.y_train, with_input)
        chunked = last_layer_gradients(model, small_data.x_train, small_data.y_train, with_input, chunk=7)
        assert whole.dtype == np.float64 and np.array_equal(whole, chunked)
