"""The shared minibatch trainer: determinism, the weighted objective, zero weights, the epoch hook, bad input."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from valbench.training import TrainSettings, resolve_device, train_minibatch


def _problem(n=120, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x @ torch.randn(d, c, generator=g)).argmax(1)
    return x, y


def _module(d=5, c=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, c))


def _flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


CPU = dict(device="cpu")


def test_same_seed_same_model_other_seed_other_shuffle():
    x, y = _problem()
    s = TrainSettings(epochs=3, batch_size=16, lr=1e-2, **CPU)
    a = train_minibatch(_module(), x, y, None, s, seed=4)
    b = train_minibatch(_module(), x, y, None, s, seed=4)
    c = train_minibatch(_module(), x, y, None, s, seed=5)
    assert torch.equal(_flat(a), _flat(b))
    assert not torch.equal(_flat(a), _flat(c))


def test_one_full_batch_sgd_step_is_the_weighted_objectives_gradient_step():
    """Reference: batch >= n, plain SGD, one epoch = one step on sum_i w_i CE_i / sum_i w_i + l2/2 ||W||^2."""
    x, y = _problem()
    w = torch.rand(len(y), generator=torch.Generator().manual_seed(1)) * 3
    l2, lr = 0.1, 0.5
    trained = train_minibatch(_module(), x, y, w, TrainSettings(epochs=1, batch_size=1000, lr=lr, optimizer="sgd",
                                                                momentum=0.0, l2=l2, **CPU))
    ref = _module()
    ce = F.cross_entropy(ref(x), y, reduction="none")
    objective = (w * ce).sum() / w.sum() + 0.5 * l2 * sum((p * p).sum() for n, p in ref.named_parameters()
                                                          if n.endswith("weight"))
    objective.backward()
    with torch.no_grad():
        expected = torch.cat([(p - lr * p.grad).flatten() for p in ref.parameters()])
    assert torch.allclose(_flat(trained), expected, atol=1e-6)


def test_zero_weight_is_dropping_the_point_and_equal_weights_are_no_weights():
    x, y = _problem()
    s = TrainSettings(epochs=2, batch_size=16, lr=1e-2, **CPU)
    w = torch.ones(len(y)) * 2.5
    w[[3, 50, 51]] = 0
    keep = w > 0
    weighted = train_minibatch(_module(), x, y, w, s, seed=1)
    dropped = train_minibatch(_module(), x[keep], y[keep], None, s, seed=1)
    assert torch.equal(_flat(weighted), _flat(dropped))
    uniform = train_minibatch(_module(), x, y, torch.full((len(y),), 7.0), s, seed=1)
    plain = train_minibatch(_module(), x, y, None, s, seed=1)
    assert torch.equal(_flat(uniform), _flat(plain))


def test_epoch_hook_sees_every_epochs_train_logits():
    x, y = _problem()
    seen = []
    module = train_minibatch(_module(), x, y, torch.ones(len(y)), TrainSettings(epochs=4, batch_size=32, **CPU),
                             on_epoch=lambda epoch, logits: seen.append((epoch, logits)))
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert all(z.shape == (len(y), 3) and z.device.type == "cpu" for _, z in seen)
    with torch.no_grad():
        assert torch.allclose(seen[-1][1], module(x))
    assert not torch.equal(seen[0][1], seen[-1][1])


def test_training_learns_and_returns_a_cpu_module_in_eval_mode():
    x, y = _problem(n=400)
    module = train_minibatch(_module(), x, y, None, TrainSettings(epochs=30, batch_size=32, lr=1e-2))
    assert not module.training and next(module.parameters()).device.type == "cpu"
    with torch.no_grad():
        assert (module(x).argmax(1) == y).double().mean() > 0.9


@pytest.mark.parametrize("settings, message", [
    (dict(epochs=0), "epochs must be a whole number >= 1"),
    (dict(min_steps=-1), "min_steps must be a whole number >= 0"),
    (dict(batch_size=2.5), "batch_size must be a whole number >= 1"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(optimizer="rmsprop"), "optimizer must be one of"),
    (dict(momentum=1.0), "momentum must lie in"),
    (dict(l2=-1.0), "l2 must be >= 0"),
    (dict(device="tpu"), "device must be"),
    (dict(schedule="step"), "schedule must be one of"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(**settings)


def test_bad_weights_and_shapes_are_refused():
    x, y = _problem()
    s = TrainSettings(epochs=1, **CPU)
    with pytest.raises(ValueError, match="rows but"):
        train_minibatch(_module(), x, y[:-1], None, s)
    with pytest.raises(ValueError, match="not all zero"):
        train_minibatch(_module(), x, y, torch.zeros(len(y)), s)
    with pytest.raises(ValueError, match="weight must have shape"):
        train_minibatch(_module(), x, y, torch.ones(3), s)


def test_auto_device_needs_no_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_min_steps_adds_epochs_to_small_training_sets_only():
    s = TrainSettings(epochs=3, batch_size=10, min_steps=20)
    assert [s.epochs_for(n) for n in (5, 10, 25, 60, 1000)] == [20, 20, 7, 4, 3]
    x, y = _problem(n=25)
    seen = []
    train_minibatch(_module(), x, y, None, TrainSettings(epochs=3, batch_size=10, min_steps=20, **CPU),
                    on_epoch=lambda epoch, logits: seen.append(epoch))
    assert seen == list(range(1, 8))


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_schedule_matches_hand_written_gradient_steps(schedule):
    """Full-batch SGD (no momentum) for T steps equals theta -= lr_t grad with lr_t = lr (constant) or
    lr (1 + cos(pi t / T)) / 2 (cosine: t = 0 .. T-1, so the last step is small and the loss settles)."""
    import math

    x, y = _problem(n=40)
    steps, lr = 4, 0.3
    trained = train_minibatch(_module(), x, y, None, TrainSettings(epochs=steps, batch_size=40, lr=lr,
                                                                   optimizer="sgd", momentum=0.0,
                                                                   schedule=schedule, **CPU))
    reference = _module()
    for t in range(steps):
        factor = 1.0 if schedule == "constant" else 0.5 * (1 + math.cos(math.pi * t / steps))
        reference.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        with torch.no_grad():
            for p in reference.parameters():
                p -= lr * factor * p.grad
    assert torch.allclose(_flat(trained), _flat(reference), atol=1e-6)
