import numpy as np
import pytest
import torch

from valbench.registry import METHODS
from valbench.methods.selection import (class_readout, facility_location_order, float32_slack, medoid_weights,
                                        nested_readout, screened_argmax)


def test_new_selectors_declare_their_family():
    for name in ("kcenter", "facility-location", "craig", "gradmatch", "glister"):
        assert METHODS[name].family == "set-selection" and METHODS[name].selects_sets
    assert METHODS["oracle-greedy"].family == "reference" and METHODS["oracle-greedy"].selects_sets


def test_nested_readout_scores_by_reverse_position():
    subsets, scores = nested_readout(np.array([4, 0, 2]), 6, [1, 3])
    assert subsets[1].tolist() == [4] and subsets[3].tolist() == [0, 2, 4]
    assert scores.tolist() == [2 / 3, 0, 1 / 3, 0, 1, 0]
    with pytest.raises(ValueError, match="fewer than the budgets"):
        nested_readout(np.array([4, 0]), 6, [3])


def test_class_readout_takes_each_class_prefix_by_its_share():
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])  # 5 of class 0, 3 of class 1
    orders = {0: np.array([6, 0, 3, 1, 2]), 1: np.array([7, 4, 5])}
    subsets, scores = class_readout(orders, y, [2, 5])
    assert subsets[2].tolist() == [6, 7] and subsets[5].tolist() == [0, 3, 4, 6, 7]
    assert scores[6] == scores[7] == 1 and scores[2] == pytest.approx(1 / 5)


def test_medoid_weights_count_each_medoids_cluster():
    sim = np.array([[3.0, 1, 0], [2, 1, 0], [0, 1, 3], [0, 3, 1]])
    assert medoid_weights(sim, np.array([0, 2])).tolist() == [2, 2]


@pytest.mark.parametrize("chunk", [1, 7, 64, 512])
def test_medoid_weights_in_row_chunks_match_a_plain_count_with_ties_to_the_first_medoid(chunk):
    rng = np.random.default_rng(3)
    sim = rng.integers(0, 4, size=(150, 150)).astype(float)  # few values: many ties
    medoids = rng.permutation(150)[:20]
    expected = np.zeros(20)
    for row in sim:
        expected[max(range(20), key=lambda j: (row[medoids[j]], -j))] += 1  # the first of the most similar
    assert medoid_weights(sim, medoids, chunk=chunk).tolist() == expected.tolist()


def test_facility_location_leaves_torch_thread_count_alone():
    """numba's threading layer, started by apricot, resets the OpenMP thread count it shares with torch: every
    later fit of the cell (and of the next cells in the worker) then ran on all cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = np.random.default_rng(0).normal(size=(40, 3))
        facility_location_order(-np.linalg.norm(x[:, None] - x[None], axis=-1), 5)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_float32_slack_bounds_the_float32_error_of_dot_products_even_under_cancellation():
    rng = np.random.default_rng(0)
    b = rng.normal(size=784)
    for scale in (1e-4, 1.0, 1e4):
        a = scale * rng.normal(size=(400, 784)) * rng.random((400, 1)) ** 4  # norms over four decades
        a[:200] -= np.outer(a[:200] @ b / (b @ b), b)  # orthogonal to b: the exact product cancels to ~0
        magnitude = np.linalg.norm(a, axis=1) * np.linalg.norm(b)
        error = np.abs((a.astype(np.float32) @ b.astype(np.float32)).astype(np.float64) - a @ b)
        slack = float32_slack(784, magnitude)
        assert np.all(error <= slack)
        assert np.all(slack <= 1e-4 * magnitude)  # and the bound is tight enough to screen with


def test_screened_argmax_finds_the_exact_argmax_from_any_approximation_within_its_slack():
    rng = np.random.default_rng(1)
    examined = []
    for _ in range(300):
        exact = rng.normal(size=60).round(1)  # coarse values: many exact ties
        slack = 0.3 * rng.random(60)
        approx = exact + slack * rng.uniform(-1, 1, 60)
        excluded = rng.random(60) < 0.2
        approx[excluded] = -np.inf
        asked = []
        pick, value = screened_argmax(approx, slack, lambda rows: (asked.append(rows), exact[rows])[1])
        eligible = np.where(excluded, -np.inf, exact)
        assert pick == int(np.argmax(eligible)) and value == eligible.max()  # ties: the lowest index
        if not isinstance(asked[0], slice):  # a slice: more than a quarter were candidates, all computed at once
            assert not excluded[asked[0]].any() and np.all(np.diff(asked[0]) > 0)
        examined.append(60 if isinstance(asked[0], slice) else len(asked[0]))
    assert np.mean(examined) < 20  # it screens: most points are never computed exactly


def test_screened_argmax_computes_everything_in_one_pass_when_the_screen_rules_out_too_few():
    exact = np.array([0.3, 0.1, 0.5, 0.5, 0.2, 0.4, -1.0, 0.0])
    approx = exact.copy()
    approx[2] = -np.inf  # not eligible, although its exact value is the largest
    asked = []
    pick, value = screened_argmax(approx, np.full(8, 10.0), lambda rows: (asked.append(rows), exact[rows])[1])
    assert asked == [slice(None)] and (pick, value) == (3, 0.5)
