import itertools

import numpy as np
import pytest

from valbench.learners import LogisticRegression
from valbench.methods.kcenter import KCenterGreedy, covering_radius, kcenter_greedy_order


@pytest.mark.parametrize("seed", range(6))
def test_greedy_radius_is_within_twice_the_enumerated_optimum(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(10, 2)) * rng.uniform(0.5, 3, size=2)
    order = kcenter_greedy_order(x, first=int(rng.integers(10)))
    assert sorted(order) == list(range(10))
    for k in (1, 2, 3, 4):
        optimum = min(covering_radius(x, np.array(s)) for s in itertools.combinations(range(10), k))
        greedy = covering_radius(x, order[:k])
        assert optimum - 1e-12 <= greedy <= 2 * optimum + 1e-12


def test_each_pick_is_the_worst_covered_point():
    x = np.array([[0.0], [1.0], [10.0], [4.0], [6.0]])
    assert kcenter_greedy_order(x, first=0).tolist() == [0, 2, 3, 4, 1]


def test_method_returns_nested_subsets_and_reverse_position_scores(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    v = KCenterGreedy().fit(small_data, learner, seed=3, budgets=[3, 10, 30]).validate("kcenter", 60, [3, 10, 30])
    assert set(v.subsets[3]) <= set(v.subsets[10]) <= set(v.subsets[30])
    top10 = np.argsort(-v.scores)[:10]
    assert set(top10) == set(v.subsets[10])
    again = KCenterGreedy().fit(small_data, learner, seed=3, budgets=[3, 10, 30])
    assert all(np.array_equal(again.subsets[k], v.subsets[k]) for k in v.subsets)


def difference_greedy(x, first, n_select):
    """The farthest-point greedy written plainly: distances from x - c, ties to the lowest index."""
    gap, order, centre = np.full(len(x), np.inf), [], first
    for _ in range(n_select):
        order.append(centre)
        gap = np.minimum(gap, np.linalg.norm(x - x[centre], axis=1))
        gap[order] = -1
        centre = int(np.argmax(gap))
    return order, gap


@pytest.mark.parametrize("seed", range(3))
def test_norm_expansion_update_picks_what_the_plain_difference_picks(seed):
    x = np.random.default_rng(seed).normal(size=(300, 20)) * 5 + 3
    order, gap = difference_greedy(x, 7, 120)
    assert kcenter_greedy_order(x, 7, 120).tolist() == order


def test_the_greedy_stops_at_the_largest_budget_and_ranks_the_rest_by_their_last_distance(small_data):
    from valbench.methods.kcenter import kcenter_greedy

    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    v = KCenterGreedy().fit(small_data, learner, seed=3, budgets=[3, 10])
    assert v.extra["greedy_steps"] == 10
    full = kcenter_greedy_order(small_data.x_train, v.extra["first_centre"])
    for k in (3, 10):  # the same subsets as the full order's prefixes
        assert v.subsets[k].tolist() == sorted(full[:k])
    _, gap = difference_greedy(small_data.x_train.astype(np.float64), v.extra["first_centre"], 10)
    rest = np.argsort(-v.scores)[10:]
    assert np.all(np.diff(gap[rest]) <= 1e-9)  # farthest from the 10 centres first
    assert rest[0] == full[10]  # which is the full greedy's next pick
    assert np.count_nonzero(v.scores) == small_data.n_train
