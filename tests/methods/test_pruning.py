"""Training-dynamics scores (methods/pruning.py) against hand-made trajectories, explicit formulas and autograd."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tests.conftest import blobs
from valbench.datasets.noise import inject_noise
from valbench.learners import make_learner
from valbench.methods.pruning import (Trajectory, assigned_margins, error_norms, forgetting_events, grad_norms,
                                      keep_subsets, run_seed, train_trajectory)
from valbench.metrics import mislabel_auc
from valbench.protocol import DataError
from valbench.registry import get_dataset, get_method

NAMES = ["el2n", "grand", "forgetting", "aum", "margin"]


def test_forgetting_events_on_a_hand_made_trajectory():
    # rows: epochs; columns: points
    correct = torch.tensor([[1, 0, 1, 0, 1],
                            [0, 0, 1, 1, 1],
                            [1, 0, 0, 1, 0],
                            [0, 0, 1, 1, 1],
                            [1, 0, 1, 1, 1]], dtype=torch.bool)
    # point 0: 1->0 three times... (1,0),(1,0) = 2 events; point 1 never learned -> T = 5; point 2: one event;
    # point 3: learned at epoch 2, never forgotten; point 4: one event
    assert forgetting_events(correct).tolist() == [2.0, 5.0, 1.0, 0.0, 1.0]


def test_the_epoch_hook_collects_the_same_statistics_as_the_formulas():
    y = torch.tensor([0, 1, 2, 1])
    logits = [torch.tensor([[2.0, 1, 0], [0, 1, 3], [0, 0, 1], [1, 0, 0]]),
              torch.tensor([[0.0, 1, 0], [0, 2, 1], [0, 0, 2], [2, 0, 1]]),
              torch.tensor([[3.0, 1, 0], [0, 1, 2], [0, 1, 0], [0, 0, 1]])]
    trajectory = Trajectory(y)
    for epoch, z in enumerate(logits, start=1):
        trajectory(epoch, z)
    correct = torch.stack([z.argmax(1) == y for z in logits])
    assert torch.equal(trajectory.forgetting, forgetting_events(correct))
    assert trajectory.forgetting.tolist() == [1.0, 1.0, 1.0, 3.0]
    # AUM by hand: point 0's margins 2-1, 0-1, 3-1 -> mean 2/3; point 3's 0-1, 0-2, 0-1 -> -4/3
    assert torch.allclose(trajectory.aum, torch.stack([assigned_margins(z, y) for z in logits]).mean(0))
    assert trajectory.aum[0].item() == pytest.approx(2 / 3) and trajectory.aum[3].item() == pytest.approx(-4 / 3)
    assert torch.equal(trajectory.margin, assigned_margins(logits[-1], y))


def test_margins_and_error_norms_by_their_formulas():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(50, 4, generator=g), torch.randint(0, 4, (50,), generator=g)
    for i in range(50):
        others = [z[i, j] for j in range(4) if j != y[i]]
        assert assigned_margins(z, y)[i].item() == pytest.approx((z[i, y[i]] - max(others)).item(), abs=1e-6)
    onehot = F.one_hot(y, 4).double()
    assert torch.allclose(error_norms(z, y), (torch.softmax(z.double(), 1) - onehot).norm(dim=1))


def _autograd_norms(module, x, y):
    norms = []
    for i in range(len(y)):
        module.zero_grad()
        F.cross_entropy(module(x[i:i + 1]), y[i:i + 1]).backward()
        norms.append(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in module.parameters())))
    return torch.stack(norms)


def test_grand_closed_form_for_logreg_and_per_example_gradients_match_autograd():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(30, 6, generator=g), torch.randint(0, 3, (30,), generator=g)
    linear = nn.Linear(6, 3)
    assert torch.allclose(grad_norms(linear, x, y), _autograd_norms(linear, x, y), rtol=1e-5)
    mlp = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    assert torch.allclose(grad_norms(mlp, x, y, chunk=7), _autograd_norms(mlp, x, y), rtol=1e-4)
    cnn = make_learner("cnn", 64, 3, image_shape=(1, 8, 8), device="cpu").build()
    xi = torch.randn(12, 64, generator=g)
    assert torch.allclose(grad_norms(cnn, xi, y[:12], chunk=5), _autograd_norms(cnn, xi, y[:12]), rtol=1e-4)


def test_keep_takes_either_end_of_the_easiness_order():
    scores = np.array([0.5, -2.0, 3.0, 1.0, -1.0, 0.0])
    assert keep_subsets(scores, "easy", [2], seed=0)[2].tolist() == [2, 3]
    assert keep_subsets(scores, "hard", [2, 3], seed=0) == {2: pytest.approx([1, 4]), 3: pytest.approx([1, 4, 5])}


@pytest.mark.parametrize("name", NAMES)
def test_bad_parameters_are_refused(name):
    cls = get_method(name)
    with pytest.raises(DataError, match="keep='all' must be one of \\['hard', 'easy'\\]"):
        cls(keep="all").check()
    with pytest.raises(DataError, match="epochs=2.5 is invalid; epochs takes a whole number"):
        cls(epochs=2.5).check()
    with pytest.raises(DataError, match="epochs=-1 must be a whole number"):
        cls(epochs=-1).check()


def test_forgetting_needs_two_epochs_and_early_scores_take_zero():
    with pytest.raises(DataError, match="epochs=1 must be a whole number >= 2"):
        get_method("forgetting")(epochs=1).check()
    assert get_method("grand")(epochs=0).check()["epochs"] == 0
    with pytest.raises(DataError, match="runs=0 must be a whole number >= 1"):
        get_method("el2n")(runs=0).check()


@pytest.fixture(scope="module")
def noisy():
    return inject_noise(blobs(n_train=200, n_classes=3, dim=4, seed=2), 0.15, seed=0)


@pytest.mark.parametrize("name", NAMES)
def test_scores_rank_flipped_labels_low_and_keep_picks_the_ends(name, noisy):
    learner = make_learner("logreg", noisy.n_features, noisy.n_classes)
    hard = get_method(name)(keep="hard").fit(noisy, learner, seed=0, budgets=[20, 60])
    easy = get_method(name)(keep="easy").fit(noisy, learner, seed=0, budgets=[20, 60])
    assert np.array_equal(hard.scores, easy.scores)  # keep changes the subsets, never the scores
    assert mislabel_auc(hard.scores, noisy.noisy_mask) > 0.9
    flipped_hard = noisy.noisy_mask[hard.subsets[20]].mean()
    flipped_easy = noisy.noisy_mask[easy.subsets[20]].mean()
    assert flipped_hard > 0.5 and flipped_easy == 0.0  # the hardest points are the flipped ones
    assert np.all(hard.scores[hard.subsets[20]].max() <= np.sort(hard.scores)[20])
    assert hard.utility_evals == (5 if name in ("el2n", "grand") else 1)
    again = get_method(name)(keep="hard").fit(noisy, make_learner("logreg", 4, 3), seed=0, budgets=[20, 60])
    assert np.array_equal(again.scores, hard.scores)


def test_flipped_labels_get_low_aum_with_the_cnn():
    data = inject_noise(get_dataset("digits")(seed=0, n_train=300), 0.1, seed=0)
    learner = make_learner("cnn", 64, 10, image_shape=(1, 8, 8), device="cpu")
    valuation = get_method("aum")(epochs=15).fit(data, learner, seed=0, budgets=[30])
    assert mislabel_auc(valuation.scores, data.noisy_mask) > 0.9
    assert valuation.scores[data.noisy_mask].mean() < 0 < valuation.scores[~data.noisy_mask].mean()


def test_early_scores_average_independent_runs(noisy):
    learner = make_learner("mlp", noisy.n_features, noisy.n_classes, seed=0)
    mean = get_method("el2n")(runs=2, epochs=2).fit(noisy, learner, seed=7, budgets=[10]).scores
    singles = [error_norms(train_trajectory(noisy, learner, run_seed(7, r), 2)[1].logits,
                           torch.as_tensor(noisy.y_train)) for r in range(2)]
    assert not torch.equal(singles[0], singles[1])  # another initialisation and shuffle per run
    assert np.allclose(mean, -(singles[0] + singles[1]).numpy() / 2)


def test_grand_at_initialisation_of_logreg_is_the_input_norm(noisy):
    learner = make_learner("logreg", noisy.n_features, noisy.n_classes)
    scores = get_method("grand")(epochs=0, runs=1).fit(noisy, learner, seed=0, budgets=[10]).scores
    # zero weights: p = 1/C everywhere, ||p - e_y|| = sqrt((C - 1) / C), so GraNd = that times ||[x, 1]||
    norms = np.linalg.norm(np.hstack([noisy.x_train, np.ones((noisy.n_train, 1))]), axis=1)
    assert np.allclose(-scores, np.sqrt(2 / 3) * norms, rtol=1e-5)


def test_per_class_takes_each_class_share_from_its_own_end():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0, -2.0])
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])  # class 1 holds the two lowest scores
    assert keep_subsets(scores, "hard", [2], seed=0)[2].tolist() == [6, 7]
    # per class: k=2 splits 1.5 / 0.5 (the remainder tie goes to class 0: 2 / 0), k=4 splits 3 / 1
    per_class = keep_subsets(scores, "hard", [2, 4], seed=0, y=y)
    assert per_class[2].tolist() == [4, 5] and per_class[4].tolist() == [3, 4, 5, 7]
    assert keep_subsets(scores, "easy", [4], seed=0, y=y)[4].tolist() == [0, 1, 2, 6]
    assert get_method("aum")(per_class="yes").config["per_class"] is True  # the strict booleans' spellings
    with pytest.raises(DataError, match="per_class='maybe' is invalid; per_class takes a boolean"):
        get_method("aum")(per_class="maybe")
