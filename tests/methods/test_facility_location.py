import itertools

import numpy as np
import pytest

from valbench.learners import LogisticRegression
from valbench.methods.craig import Craig
from valbench.methods.facility_location import FacilityLocation, euclidean_similarity, facility_location_selection
from valbench.methods.pipeline import Pipeline
from valbench.methods.selection import class_budgets


def objective(sim, subset):
    """F(S) = sum_i max_{j in S} sim[j, i] (row j lists what candidate j covers)."""
    sim = sim.toarray() if hasattr(sim, "toarray") else sim
    return sim[list(subset)].max(axis=0).sum()


def greedy_gains(sim, order):
    """Plain greedy's marginal gains F(S + j) - F(S) of every candidate before each step of ``order``."""
    sim = sim.toarray() if hasattr(sim, "toarray") else sim
    current, steps = np.zeros(len(sim)), []
    for pick in order:
        gains = np.maximum(sim, current[None, :]).sum(axis=1) - current.sum()
        gains[list(order[:len(steps)])] = -np.inf
        steps.append(gains)
        current = np.maximum(current, sim[pick])
    return steps


def native_greedy(sim, k):
    """Plain greedy: add argmax_j F(S + j) - F(S) (ties to the lowest index)."""
    order = []
    for _ in range(k):
        order.append(int(np.argmax(greedy_gains(sim, order + [0])[-1])))
    return order


def assert_is_a_greedy_order(sim, order):
    """Every pick has the largest gain at its step (exact ties, which any greedy may break, allowed)."""
    for step, (pick, gains) in enumerate(zip(order, greedy_gains(sim, order))):
        assert gains[pick] >= gains.max() - 1e-9 * abs(gains.max()), f"step {step}: {pick} is not a best gain"


@pytest.mark.parametrize("seed", range(4))
def test_greedy_is_within_1_minus_1_over_e_of_the_enumerated_optimum(seed):
    x = np.random.default_rng(seed).normal(size=(11, 3))
    sim = euclidean_similarity(x)
    order = facility_location_selection(x)
    for k in (1, 2, 3, 4):
        best = max(objective(sim, s) for s in itertools.combinations(range(11), k))
        assert (1 - 1 / np.e) * best <= objective(sim, order[:k]) <= best + 1e-9


@pytest.mark.parametrize("seed, neighbors", [(0, 0), (1, 0), (2, 5), (3, 8)])
def test_apricot_picks_the_same_points_as_a_native_greedy(seed, neighbors):
    x = np.random.default_rng(seed).normal(size=(40, 4))
    sim = euclidean_similarity(x, neighbors)
    order = facility_location_selection(x, neighbors)[:15]
    assert_is_a_greedy_order(sim, order)
    native = native_greedy(sim, 15)
    agree = next((i for i, (a, b) in enumerate(zip(order, native)) if a != b), 15)
    assert agree >= 5  # identical until the first exact tie (here none in the first five picks)


def test_class_budgets_sum_to_k_and_follow_class_shares():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    for k in range(0, 101):
        split = class_budgets(y, k)
        assert sum(split.values()) == k
        assert all(abs(split[c] - k * n / 100) < 1 for c, n in zip((0, 1, 2), (50, 30, 20)))
    assert class_budgets(np.array([0] * 7 + [1] * 2 + [2]), 5) == {0: 4, 1: 1, 2: 0}


def test_per_class_subsets_are_nested_greedy_orders_within_each_class(small_data):
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    budgets = [6, 12, 30]
    v = FacilityLocation(per_class=True).fit(small_data, learner, 0, budgets).validate("fl", 60, budgets)
    y = small_data.y_train
    for k in budgets:
        assert {c: int((y[v.subsets[k]] == c).sum()) for c in range(3)} == class_budgets(y, k)
    for c in range(3):
        members = np.flatnonzero(y == c)
        ranked = np.argsort(-v.scores[members], kind="stable")[:8]
        assert_is_a_greedy_order(euclidean_similarity(small_data.x_train[members]), ranked)
    whole = FacilityLocation(per_class=False).fit(small_data, learner, 0, budgets)
    assert set(whole.subsets[6]) <= set(whole.subsets[12])


def test_negative_neighbors_is_a_clear_error(small_data):
    with pytest.raises(ValueError, match="neighbors must be >= 0"):
        FacilityLocation(neighbors=-1).fit(small_data, None, 0, [3])


def test_per_class_greedy_stops_at_each_class_share_of_the_largest_budget(small_data):
    from valbench.methods.selection import class_steps, facility_location_gains

    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    budgets = [3, 12]
    v = FacilityLocation(per_class=True).fit(small_data, learner, 0, budgets)
    y, steps = small_data.y_train, class_steps(small_data.y_train, budgets)
    for c in range(3):
        members = np.flatnonzero(y == c)
        full = members[facility_location_selection(small_data.x_train[members])]
        by_score = members[np.argsort(-v.scores[members], kind="stable")]
        assert by_score[:steps[c]].tolist() == full[:steps[c]].tolist()  # the full greedy's prefix
        sim = euclidean_similarity(small_data.x_train[members])
        covered = sim[np.searchsorted(members, by_score[:steps[c]])].max(axis=0)
        gains = facility_location_gains(sim, covered)
        rest = np.searchsorted(members, by_score[steps[c]:])
        assert np.all(np.diff(gains[rest]) <= 1e-9)  # the rest by marginal gain, best first


@pytest.mark.parametrize("neighbors", [0, 6])
def test_marginal_gains_equal_the_objective_difference(neighbors):
    from valbench.methods.selection import facility_location_gains

    x = np.random.default_rng(5).normal(size=(30, 3))
    sim = euclidean_similarity(x, neighbors)
    dense = sim.toarray() if hasattr(sim, "toarray") else sim
    chosen = [2, 9, 17]
    gains = facility_location_gains(sim, dense[chosen].max(axis=0), chunk=7)
    expected = [objective(sim, chosen + [j]) - objective(sim, chosen) for j in range(30)]
    assert np.allclose(gains, expected)


def test_dense_similarity_matches_scikit_learn():
    from sklearn.metrics import pairwise_distances

    x = np.random.default_rng(1).normal(size=(50, 7)) * 3 + 1
    squared = pairwise_distances(x, metric="sqeuclidean")
    assert np.allclose(euclidean_similarity(x), squared.max() - squared, atol=1e-9)


@pytest.mark.parametrize("method", [FacilityLocation(), FacilityLocation(neighbors=5), Craig(),
                                    Pipeline(detector="enn", selector="facility-location")])
def test_prepare_builds_every_kernel_a_fit_then_calls(small_data, method):
    """``prepare`` (run by the runner before the timed fit) compiles apricot's kernels: the fit after it builds
    none (a build is a miss of the kernel factories' cache, and compiles on its first call)."""
    from apricot.functions import facilityLocation as apricot_module

    from valbench.methods.selection import apricot_facility_location, compile_facility_location

    apricot_facility_location()  # the factories wrapped, so that their builds are counted
    factories = (apricot_module.calculate_gains, apricot_module.calculate_gains_sparse)
    for factory in factories:
        factory.cache_clear()  # as in a fresh process: earlier tests built them
    compile_facility_location.cache_clear()
    method.prepare()
    built = [f.cache_info().misses for f in factories]
    assert built == [1, 1]
    learner = LogisticRegression(small_data.n_features, small_data.n_classes)
    method.fit(small_data, learner, 0, budgets=[10, 20])
    assert [f.cache_info().misses for f in factories] == built
