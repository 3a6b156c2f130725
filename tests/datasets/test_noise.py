import numpy as np
import pytest

from valbench.protocol import DataError
from valbench.datasets.noise import flip_labels, inject_noise


@pytest.mark.parametrize("n, rate, classes", [(100, 0.1, 2), (57, 0.33, 10), (10, 0.0, 3), (9, 0.95, 4)])
def test_flips_exactly_round_rate_n_labels_each_to_another_class(n, rate, classes):
    y = np.arange(n) % classes
    noisy, mask = flip_labels(y, rate, classes, seed=4)
    assert mask.sum() == round(rate * n)
    assert (noisy[mask] != y[mask]).all() and (noisy[~mask] == y[~mask]).all()
    assert noisy.min() >= 0 and noisy.max() < classes
    again, mask_again = flip_labels(y, rate, classes, seed=4)
    assert np.array_equal(noisy, again) and np.array_equal(mask, mask_again)


def test_flip_targets_cover_every_other_class():
    noisy, mask = flip_labels(np.zeros(3000, int), 0.5, 4, seed=0)
    assert set(np.unique(noisy[mask])) == {1, 2, 3}


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_bad_rates(rate):
    with pytest.raises(DataError, match="noise rate must lie in \\[0, 1\\)"):
        flip_labels(np.arange(10) % 2, rate, 2, 0)


def test_inject_noise_keeps_clean_labels_and_splits(small_data):
    noisy = inject_noise(small_data, 0.2, seed=1)
    assert noisy.noisy_mask.sum() == 12
    assert np.array_equal(noisy.y_train_clean, small_data.y_train)
    assert np.array_equal(noisy.y_test, small_data.y_test)
    assert noisy.meta["noise_rate"] == 0.2
