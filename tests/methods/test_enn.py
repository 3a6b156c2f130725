import numpy as np
import pytest

from tests.conftest import blobs
from valbench.methods.enn import EditedNearestNeighbours, enn_scores
from valbench.protocol import DataError


def brute_force_enn(x, y, k):
    """Wilson's margin by a plain loop: sort every other point by distance (ties by index), count labels."""
    scores = []
    for i in range(len(y)):
        dist = ((x - x[i]) ** 2).sum(axis=1)
        others = [j for j in np.argsort(dist, kind="stable") if j != i][:k]
        counts = np.bincount(y[others], minlength=y.max() + 1) / k
        own = counts[y[i]]
        counts[y[i]] = -1
        scores.append(own - counts.max())
    return np.array(scores)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_enn_equals_a_brute_force_loop(k):
    data = blobs(n_train=80, n_classes=3, seed=4)
    y = data.y_train.copy()
    y[::7] = (y[::7] + 1) % 3  # flipped labels, so that some margins are negative
    np.testing.assert_allclose(enn_scores(data.x_train, y, k), brute_force_enn(data.x_train.astype(float), y, k))


def test_enn_flags_flipped_labels_and_wilsons_rule_is_its_sign(small_data):
    y = small_data.y_train.copy()
    flipped = np.zeros(len(y), bool)
    flipped[::6] = True
    y[flipped] = (y[flipped] + 1) % 3
    scores = enn_scores(small_data.x_train, y, 5)
    assert scores[flipped].mean() < 0 < scores[~flipped].mean()
    edited = brute_force_enn(small_data.x_train.astype(float), y, 5) < 0
    # Wilson's rule: drop the points whose label is outnumbered among their neighbours
    for i in np.flatnonzero(edited):
        dist = ((small_data.x_train - small_data.x_train[i]) ** 2).sum(axis=1)
        near = [j for j in np.argsort(dist, kind="stable") if j != i][:5]
        assert np.bincount(y[near]).max() > (y[near] == y[i]).sum()
    assert np.array_equal(scores < 0, edited)


def test_enn_never_counts_a_point_as_its_own_neighbour_among_duplicates():
    x = np.array([[0.0], [0.0], [0.0], [5.0], [5.0]])
    y = np.array([0, 0, 1, 1, 1])
    # point 2 (label 1) has two label-0 duplicates at distance 0: its 2 neighbours are both 0
    np.testing.assert_allclose(enn_scores(x, y, 2), brute_force_enn(x, y, 2))
    assert enn_scores(x, y, 2)[2] == -1.0


def test_enn_method_and_its_checks(small_data):
    val = EditedNearestNeighbours(k=4).fit(small_data, None, 0)
    assert val.scores.shape == (small_data.n_train,) and val.scores.min() >= -1 and val.scores.max() <= 1
    with pytest.raises(DataError, match="k must be"):
        EditedNearestNeighbours(k=0).check()
