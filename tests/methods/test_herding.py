import numpy as np

from tests.conftest import blobs
from valbench.methods.herding import Herding, herding_order
from valbench.methods.selection import class_budgets


def brute_force_herding(x, n_select):
    """argmin over the unpicked points of || mu - mean(picks + [x]) ||, ties to the lowest index."""
    mu, picks = x.mean(axis=0), []
    for _ in range(n_select):
        best, best_dist = None, np.inf
        for i in range(len(x)):
            if i in picks:
                continue
            dist = np.linalg.norm(mu - x[picks + [i]].mean(axis=0))
            if dist < best_dist - 1e-12:
                best, best_dist = i, dist
        picks.append(best)
    return picks


def test_herding_equals_the_brute_force_argmin_loop():
    x = np.random.default_rng(0).normal(size=(25, 3))
    assert herding_order(x).tolist() == brute_force_herding(x, 25)
    assert herding_order(x, 7).tolist() == brute_force_herding(x, 7)


def test_running_mean_tracks_the_class_mean():
    x = np.random.default_rng(1).normal(size=(200, 5))
    order = herding_order(x, 20)
    herded = np.linalg.norm(x[order].mean(axis=0) - x.mean(axis=0))
    drawn = np.mean([np.linalg.norm(x[np.random.default_rng(s).choice(200, 20, replace=False)].mean(axis=0)
                                    - x.mean(axis=0)) for s in range(50)])
    assert herded < drawn / 5


def test_method_is_per_class_and_nested():
    data = blobs(n_train=90, n_classes=3, seed=2)
    val = Herding().fit(data, None, 0, budgets=[9, 30])
    assert set(val.subsets[9]) <= set(val.subsets[30])
    for k in (9, 30):
        counts = np.bincount(data.y_train[val.subsets[k]], minlength=3)
        assert dict(enumerate(counts)) == class_budgets(data.y_train, k)
    members = np.flatnonzero(data.y_train == 0)
    first = members[herding_order(data.x_train[members], 1)[0]]
    assert val.scores[first] == 1.0
