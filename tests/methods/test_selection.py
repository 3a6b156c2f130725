import numpy as np
import pytest

from valbench.registry import METHODS
from valbench.methods.selection import class_readout, medoid_weights, nested_readout


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
